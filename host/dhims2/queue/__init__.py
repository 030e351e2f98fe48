"""The durable upload queue: the SQLite store, the upload service, job following, the run lock
and retention. Imports `forms` (prepared records) and `dhis2`."""

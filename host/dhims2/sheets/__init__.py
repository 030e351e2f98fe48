"""Spreadsheets and files in: CSV, XLSX and JSON reading, mapping templates, transforms,
template suggestion, duplicate rows and the export of invalid rows. Imports `forms` and `dhis2`."""

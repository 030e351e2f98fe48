"""This computer's side: saved settings, the data folder, and the DHIS2 client, store and
form built from them for the CLI and the browser host alike."""

"""The program's form: metadata, the record model, JSON Schema, value coercion and validation.

Turns what a clerk entered (a captured form or a sheet row) into a DHIS2 event, or into reasons
why it cannot be one. Imports only `dhis2`."""

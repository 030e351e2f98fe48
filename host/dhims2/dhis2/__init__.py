"""Talking to DHIS2: the HTTP client, its errors, credentials, UIDs and the legacy events API.

The lowest layer: it imports nothing else of the package."""

"""Registering the native host with browsers (`install.py`) and checking it (`dhims2 doctor`)."""

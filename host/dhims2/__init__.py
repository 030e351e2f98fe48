"""DHIMS2 uploader: get In-Patient events into DHIS2 exactly once, with DHIS2's real outcome."""

__version__ = "0.1.0"

"""The errors a stage expects and reports as one clear message (``cli.run`` exits 1 on them)."""

from __future__ import annotations


class ParamsError(ValueError):
    """A value in ``params.yaml`` is missing, unknown, of the wrong type or impossible."""


class DataError(ValueError):
    """Input data is malformed: the message names the file, row or column at fault."""


class SourceError(RuntimeError):
    """A data source cannot be read: missing file, failed download or checksum mismatch."""


class TrackingError(RuntimeError):
    """The tracking backend could not record a run; the message says how to retry."""


EXPECTED_ERRORS = (ParamsError, SourceError, DataError, TrackingError, FileNotFoundError, PermissionError)

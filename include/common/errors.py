"""The exception types of claimsflow: one base, one subclass per area.

Every error says which file (or table, or URL) and which line/record it is about, and what was
expected, so a user can find the bad input without reading a traceback.
"""

from __future__ import annotations


class ClaimsflowError(Exception):
    """Base of every error claimsflow raises on purpose."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.source = source
        self.line = line
        where = ""
        if source is not None:
            where = f"{source}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)


class ConfigurationError(ClaimsflowError):
    """A setting (data root, connection, param) is missing or unusable."""


class DatabaseError(ClaimsflowError):
    """A load into PostgreSQL failed, or a name is not a safe identifier."""


class InvalidIdentifier(DatabaseError):
    """A schema/table/column name (often derived from a file name) is not safe to use."""


class HttpError(ClaimsflowError):
    """An HTTP endpoint failed for good (after retries), or answered something unusable."""

    def __init__(self, message: str, *, source: str | None = None, status: int | None = None) -> None:
        self.status = status
        super().__init__(message, source=source)


class DownloadError(ClaimsflowError):
    """A file could not be fetched, verified or extracted; the partial work is kept or quarantined."""

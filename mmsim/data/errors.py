"""The exception every mmsim data reader raises for bad input."""

from __future__ import annotations

import os


class DataError(ValueError):
    """Bad input data: names the file, the 1-based row and the field that is wrong, on one line.

    Parameters
    ----------
    path : str or os.PathLike or None
        The offending file, shown in the message as given (relative paths stay relative, so
        the user sees the path they typed or the data root joined with it).
    row : int or None
        1-based line (CSV) or record (binary formats, events) number, or None when the problem
        is not tied to one row (missing file, row-count mismatch, ...).
    field : str or None
        Name of the offending column or field, or None.
    message : str
        What is wrong, e.g. ``"'abc' is not an integer"`` (line breaks are shown as spaces).

    Attributes
    ----------
    path : str or None
    row : int or None
    field : str or None
    reason : str
        ``message`` without the location prefix.

    Examples
    --------
    >>> str(DataError("/d/AMZN_message_1.csv", 17, "price", "'abc' is not an integer"))
    "/d/AMZN_message_1.csv: row 17, field 'price': 'abc' is not an integer"
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        row: int | None,
        field: str | None,
        message: str,
    ) -> None:
        self.path = None if path is None else os.fspath(path)
        self.row = None if row is None else int(row)
        self.field = field
        self.reason = message
        super().__init__(self._format())

    def _format(self) -> str:
        parts = []
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        where = self.path if self.path is not None else "<data>"
        if parts:
            where += ": " + ", ".join(parts)
        return " ".join(f"{where}: {self.reason}".splitlines())

    def __reduce__(self):  # keep the exception picklable (multiprocessing sweeps)
        return (type(self), (self.path, self.row, self.field, self.reason))

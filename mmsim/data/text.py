"""Bytes of a vendor text file → text, as real files come: UTF-8, maybe with a byte-order mark."""

from __future__ import annotations

import os

from mmsim.data.errors import DataError


def decode_utf8(raw: bytes, path: str | os.PathLike[str]) -> str:
    """``raw`` decoded as UTF-8, a leading byte-order mark dropped.

    Raises
    ------
    mmsim.data.DataError
        If ``raw`` is not UTF-8, naming ``path`` and the 1-based line of the first bad byte.
    """
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        row = raw.count(b"\n", 0, e.start) + 1
        raise DataError(path, row, None, f"not UTF-8 text (byte {e.start})") from None

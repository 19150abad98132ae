"""Canonical event files: Parquet with :data:`~mmsim.dtypes.EVENT_SCHEMA` plus JSON metadata.

A canonical event file holds one :data:`~mmsim.dtypes.EVENT_DTYPE` stream in row groups of
about one million rows, so readers can stream it with bounded memory
(:func:`iter_event_chunks`). The ingest metadata and the validation report travel in the
Parquet key-value metadata as JSON under the keys ``b"mmsim.meta"`` and ``b"mmsim.report"``.

Integrity: every data page carries a CRC-32 page checksum (Parquet ``write_page_checksum``),
verified whenever mmsim reads the file, so a damaged page raises a :class:`DataError` naming
the file, the row group and the column instead of decoding to other numbers. The sha256 of
the whole file is computed when it is written and kept beside it in ``<file>.sha256.json``
with the file's size and modification time; :func:`file_sha256` trusts that record while
size and mtime are unchanged, so a large file is not re-hashed on every run.

This module also holds the small file-safety helpers shared by every writer of mmsim
(ingest, the cache, run and sweep folders): temporary names carrying host and pid
(:func:`temp_path`, :func:`clean_stale_temps`), :func:`atomic_file`, fsync helpers and the
advisory lock :class:`FileLock`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmsim.data.errors import DataError
from mmsim.dtypes import EVENT_DTYPE, EVENT_SCHEMA, events_to_table

META_KEY = b"mmsim.meta"
REPORT_KEY = b"mmsim.report"
ROW_GROUP_ROWS = 1_000_000
#: Suffix of the hash record written beside a canonical file.
HASH_SUFFIX = ".sha256.json"

# --------------------------------------------------------------------------------------------
# file-safety helpers
# --------------------------------------------------------------------------------------------

#: This host, as it appears in temporary and lock file names (``-`` replaced by ``_``).
HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"
_TEMP_RE = re.compile(
    r"^\.(?P<name>.+)\.mmsim-(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)-[0-9a-f]{8}\.tmp$"
)
#: temp names of mmsim before 0.x: ``<name>.tmp<pid>`` (synthetic) and ``.<name>.XXXXXXXX.tmp``
_OLD_PID_TEMP_RE = re.compile(r"^(?P<name>.+\.parquet)\.tmp(?P<pid>\d+)$")
_OLD_MKSTEMP_RE = re.compile(r"^\.(?P<name>.+\.parquet)\.[A-Za-z0-9_]{8}\.tmp$")
#: pid-less temp files of old versions are removed only when older than this (seconds)
_OLD_TEMP_AGE_S = 24 * 3600


def temp_path(path: str | os.PathLike[str]) -> Path:
    """A fresh temporary name beside ``path``: ``.<name>.mmsim-<host>-<pid>-<hex8>.tmp``.

    The host and pid in the name let :func:`clean_stale_temps` recognise the leftovers of
    a process that died (killed) without removing the files of a live one.
    """
    p = Path(path)
    return p.with_name(f".{p.name}.mmsim-{HOST}-{os.getpid()}-{secrets.token_hex(4)}.tmp")


def create_temp(path: str | os.PathLike[str]) -> Path:
    """Create (``O_CREAT | O_EXCL``, empty) and return a :func:`temp_path` beside ``path``.

    The file gets the ordinary mode of a new file (``0o666`` minus the umask), not the
    ``0o600`` of :func:`tempfile.mkstemp`, so a file moved into place from it has the same
    permissions as any other file mmsim writes.

    Raises
    ------
    OSError
        If the folder does not exist or is not writable.
    """
    for _ in range(100):
        tmp = temp_path(path)
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"{path}: cannot create a temporary file beside it")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a process of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(folder: str | os.PathLike[str], name: str | None = None) -> list[Path]:
    """Remove the temporary files of dead mmsim processes in ``folder``; return them.

    A temporary file is removed when its name is one mmsim gives (:func:`temp_path`) and
    the pid in it is not running on this host (files of other hosts are left alone). With
    ``name``, only the temporary files of that target are considered. Temp files of older
    mmsim versions are recognised too: ``<x>.parquet.tmp<pid>`` when the pid is gone and
    the file is over 10 minutes old, and pid-less ``.<x>.parquet.XXXXXXXX.tmp`` when over a
    day old. Never raises (a file that cannot be removed is skipped).
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for e in entries:
        m = _TEMP_RE.match(e.name)
        stale = False
        if m:
            if name is not None and m["name"] != name:
                continue
            stale = m["host"] == HOST and not pid_alive(int(m["pid"]))
        elif name is None:
            try:
                age = now - e.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            m = _OLD_PID_TEMP_RE.match(e.name)
            if m:
                stale = age > 600 and not pid_alive(int(m["pid"]))
            elif _OLD_MKSTEMP_RE.match(e.name):
                stale = age > _OLD_TEMP_AGE_S
        if stale and e.is_file(follow_symlinks=False):
            try:
                os.unlink(e.path)
                removed.append(Path(e.path))
            except OSError:
                pass
    return removed


def clean_stale_locks(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the ``*.lock`` files (:class:`FileLock`) in ``folder`` left by dead
    processes of this host; return them. A lock file is removed only while holding its
    lock, so a live holder's file is never touched. Never raises."""
    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.endswith(".lock")]
    except OSError:
        return removed
    for e in entries:
        try:
            info = json.loads(Path(e.path).read_text() or "{}")
            if info.get("host") != socket.gethostname() or pid_alive(int(info["pid"])):
                continue
            lock = FileLock(e.path)
            if lock.acquire():
                lock.release()
                removed.append(Path(e.path))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return removed


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a written file's data to disk (``os.fsync``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (names created, renamed or removed in it) to disk."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:  # some file systems cannot fsync a directory
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike[str]) -> None:
    """fsync every file and folder under ``root`` (and ``root`` itself), deepest first."""
    for dirpath, _dirs, files in os.walk(root, topdown=False):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                fsync_file(p)
        fsync_dir(dirpath)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Write ``path`` atomically: yields a fresh temporary path beside it (created empty,
    ordinary permissions); when the block ends the file is fsynced and moved into place
    with :func:`os.replace` and the folder fsynced. If the block raises (or the process
    is interrupted) the temporary file is removed and ``path`` is untouched.

    Raises
    ------
    OSError
        If the folder does not exist or is not writable.
    """
    path = Path(path)
    tmp = create_temp(path)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


class FileLock:
    """An exclusive advisory lock on a lock file (``fcntl.flock``), holding who owns it.

    The kernel releases the lock when its holder exits, killed or not, so a dead
    process's lock never blocks: the next process locks the file it left behind. The file
    records ``pid``, host and start time for the error message; :meth:`release` removes
    it. The lock is per open file, so two locks on the same path in one process exclude
    each other too.

    Parameters
    ----------
    path : str or os.PathLike
        The lock file (created if missing; its folder must exist).
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, blocking: bool = False) -> bool:
        """Take the lock; return False if another holder has it (``blocking=False``).

        Raises
        ------
        OSError
            If the lock file cannot be created (folder missing or not writable) or the
            file system does not support locks.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: lock already held by this object")
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                replaced = not self._same_file(fd)
                os.close(fd)
                if replaced:  # the holder released it meanwhile (file removed): retry
                    continue
                return False
            except BaseException:
                os.close(fd)
                raise
            if not self._same_file(fd):  # removed by its last holder before we locked it
                os.close(fd)
                continue
            stamp = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                     "since": stamp, "argv": sys.argv[:4]}).encode() + b"\n")
            self._fd = fd
            return True

    def _same_file(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def holder(self) -> str:
        """Who holds the lock, as recorded in the file (``pid N on HOST since T``), or ''."""
        try:
            info = json.loads(self.path.read_text() or "{}")
            return f"pid {info['pid']} on {info['host']} since {info['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return ""

    def release(self) -> None:
        """Remove the lock file and release the lock (no-op if not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire(blocking=True)
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# --------------------------------------------------------------------------------------------
# hash records
# --------------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike[str]) -> str:
    """sha256 (hex) of a file's bytes (about 1 GB/s from the page cache)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def hash_record_path(path: str | os.PathLike[str]) -> Path:
    """``<path>.sha256.json``: where the hash of a canonical file is recorded."""
    p = Path(path)
    return p.with_name(p.name + HASH_SUFFIX)


def _write_hash_record(record_path: Path, digest: str, st: os.stat_result) -> None:
    rec = {"sha256": digest, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    with atomic_file(record_path) as tmp:
        tmp.write_text(json.dumps(rec) + "\n")


def write_hash_record(path: str | os.PathLike[str], digest: str) -> None:
    """Record ``digest`` as the sha256 of ``path`` (with its current size and mtime) in
    ``<path>.sha256.json``, atomically.

    Raises
    ------
    OSError
        If the folder is not writable.
    """
    _write_hash_record(hash_record_path(path), digest, os.stat(path))


def recorded_sha256(path: str | os.PathLike[str]) -> str | None:
    """The sha256 recorded when mmsim wrote ``path``, if the file's size and mtime still
    match the record; else None (no record, unreadable record, or the file changed)."""
    try:
        rec = json.loads(hash_record_path(path).read_text())
        st = os.stat(path)
        if rec["bytes"] == st.st_size and rec["mtime_ns"] == st.st_mtime_ns:
            return str(rec["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


@dataclass(frozen=True)
class HashCheck:
    """Result of :func:`check_hash`.

    Attributes
    ----------
    sha256 : str
        The file's sha256 (hex).
    status : str
        ``recorded`` (record matches size and mtime: not re-hashed), ``verified`` (file
        touched since, re-hashed, same bytes), ``mismatch`` (re-hashed, other bytes than
        mmsim wrote) or ``unrecorded`` (no usable record; hashed).
    """

    sha256: str
    status: str


def check_hash(path: str | os.PathLike[str], refresh: bool = True) -> HashCheck:
    """The sha256 of a canonical file, from its record when size and mtime are unchanged.

    Parameters
    ----------
    path : str or os.PathLike
    refresh : bool
        When the file was re-hashed and matches its record (``verified``), rewrite the
        record with the new mtime so the next call need not hash it again.

    Raises
    ------
    OSError
        If the file cannot be read.
    """
    rec = recorded_sha256(path)
    if rec is not None:
        return HashCheck(rec, "recorded")
    digest = sha256_file(path)
    try:
        old = json.loads(hash_record_path(path).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return HashCheck(digest, "unrecorded")
    if old != digest:
        return HashCheck(digest, "mismatch")
    if refresh:
        with contextlib.suppress(OSError):
            _write_hash_record(hash_record_path(path), digest, os.stat(path))
    return HashCheck(digest, "verified")


# --------------------------------------------------------------------------------------------
# canonical files
# --------------------------------------------------------------------------------------------


@dataclass
class IngestResult:
    """What a reader returns: the canonical events and what is known about them.

    Attributes
    ----------
    events : numpy.ndarray
        Shape ``(n,)``, dtype :data:`~mmsim.dtypes.EVENT_DTYPE`, in file order; ``exch_ts``
        and ``local_ts`` non-decreasing.
    meta : dict
        JSON-able description: ``source``, ``symbol``, ``date`` (ISO), ``levels`` (int or
        None for full depth), ``clocks`` (1: ``local_ts == exch_ts``; 2: separate clocks),
        ``tick_size``, ``lot_size``, ``multiplier`` (hints in user units, may be None),
        ``files`` (list of ``{"name", "sha256", "bytes"}``) and source-specific keys.
    report : dict
        JSON-able validation counts (see the reader's docs and
        :func:`mmsim.data.validate.validate_events`).
    """

    events: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


class CanonicalWriter:
    """Stream events into a canonical Parquet file, atomically (a context manager).

    Writes zstd-compressed row groups with page checksums to a temporary file beside
    ``path`` (:func:`temp_path`); on a clean exit it closes the file, records its sha256
    in ``<path>.sha256.json`` (:func:`check_hash`), fsyncs it and moves it into place with
    :func:`os.replace`. If the block raises (Ctrl-C included) the temporary file is
    removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.parquet`` file; its folder must exist.
    meta, report : dict
        JSON-able; stored under ``mmsim.meta`` / ``mmsim.report``.

    Attributes
    ----------
    sha256 : str
        The written file's sha256, after the block.

    Raises
    ------
    TypeError
        If ``meta`` or ``report`` is not JSON-able, or :meth:`write` gets another dtype.
    OSError
        If the folder does not exist or is not writable.
    """

    def __init__(self, path: str | os.PathLike[str], meta: dict[str, Any],
                 report: dict[str, Any]):
        self.path = Path(path)
        self.kv = {
            META_KEY: json.dumps(meta, sort_keys=True).encode(),
            REPORT_KEY: json.dumps(report, sort_keys=True).encode(),
        }
        self.sha256 = ""
        self._tmp: Path | None = None
        self._w: pq.ParquetWriter | None = None
        self._rows = 0

    def __enter__(self) -> CanonicalWriter:
        self._tmp = create_temp(self.path)
        try:
            self._w = pq.ParquetWriter(self._tmp, EVENT_SCHEMA.with_metadata(self.kv),
                                       compression="zstd", write_page_checksum=True)
        except BaseException:
            self._discard()
            raise
        return self

    def write(self, events: np.ndarray, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        """Append ``events`` (``EVENT_DTYPE``) in row groups of at most ``row_group_rows``."""
        if events.dtype != EVENT_DTYPE:
            raise TypeError(f"expected EVENT_DTYPE events, got {events.dtype}")
        for start in range(0, len(events), row_group_rows):
            table = events_to_table(events[start : start + row_group_rows])
            self._w.write_table(table.replace_schema_metadata(self.kv),
                                row_group_size=row_group_rows)
            self._rows += table.num_rows

    def write_columns(self, columns: dict[str, np.ndarray]) -> None:
        """Append one row group from one contiguous array per event field.

        ``columns`` maps every name of :data:`EVENT_SCHEMA` to a C-contiguous 1-d array of
        that field's ``EVENT_DTYPE`` dtype, all of one length. Arrow wraps the arrays without
        copying them, so a caller filling its buffers chunk by chunk holds each row group
        once, not also as records and as an Arrow copy; the file's bytes are those
        :meth:`write` gives for the same events in one row group.

        Raises
        ------
        ValueError
            If a field is missing, of another dtype or length, or not contiguous.
        """
        names = EVENT_SCHEMA.names
        if sorted(columns) != sorted(names):
            raise ValueError(f"expected the columns {names}, got {sorted(columns)}")
        n = len(columns[names[0]])
        for name in names:
            c = columns[name]
            if (c.ndim != 1 or c.dtype != EVENT_DTYPE[name] or len(c) != n
                    or not c.flags.c_contiguous):
                raise ValueError(f"column {name!r}: expected a contiguous ({n},) "
                                 f"{EVENT_DTYPE[name]} array, got {c.shape} {c.dtype}")
        table = pa.Table.from_arrays([pa.array(columns[name]) for name in names],
                                     schema=EVENT_SCHEMA)
        self._w.write_table(table.replace_schema_metadata(self.kv), row_group_size=max(n, 1))
        self._rows += n

    def _discard(self) -> None:
        if self._w is not None:
            with contextlib.suppress(Exception):
                self._w.close()
            self._w = None
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = None

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._discard()
            return
        try:
            if self._rows == 0:  # an empty file still carries the schema and metadata
                self._w.write_table(events_to_table(np.zeros(0, EVENT_DTYPE))
                                    .replace_schema_metadata(self.kv))
            self._w.close()
            self._w = None
            fsync_file(self._tmp)
            self.sha256 = sha256_file(self._tmp)  # from the page cache: ~0.2 s per 200 MB
            # the record describes the temp file, whose size and mtime the rename keeps
            _write_hash_record(hash_record_path(self.path), self.sha256, os.stat(self._tmp))
            os.replace(self._tmp, self.path)
            self._tmp = None
            fsync_dir(self.path.parent)
        except BaseException:
            self._discard()
            raise


def write_events(
    path: str | os.PathLike[str],
    result: IngestResult,
    *,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> Path:
    """Write ``result`` to a canonical Parquet event file, atomically.

    The file (zstd, page checksums) is written to a temporary name in the destination
    folder, fsynced and moved into place with :func:`os.replace`, so an interrupted write
    never leaves a file that looks complete; its sha256 is recorded beside it in
    ``<path>.sha256.json`` (see :class:`CanonicalWriter`).

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.parquet`` file; its folder must exist.
    result : IngestResult
        ``events`` must have dtype ``EVENT_DTYPE``; ``meta`` and ``report`` must be JSON-able.
    row_group_rows : int, default 1_000_000
        Rows per Parquet row group.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    TypeError
        If the events do not have ``EVENT_DTYPE`` or meta/report are not JSON-able.
    ValueError
        If ``row_group_rows`` is not positive.
    OSError
        If the folder does not exist or is not writable (nothing is left behind).
    """
    path = Path(path)
    if result.events.dtype != EVENT_DTYPE:
        raise TypeError(f"expected EVENT_DTYPE events, got {result.events.dtype}")
    if row_group_rows <= 0:
        raise ValueError(f"row_group_rows must be positive, got {row_group_rows}")
    with CanonicalWriter(path, result.meta, result.report) as w:
        w.write(result.events, row_group_rows)
    return path


def parquet_file(path: str | os.PathLike[str]) -> pq.ParquetFile:
    """Open a Parquet file with page-checksum verification on.

    Raises
    ------
    DataError
        If the file is missing or its footer is not Parquet.
    """
    if not os.path.exists(path):
        raise DataError(path, None, None, "no such file")
    try:
        return pq.ParquetFile(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(path, None, None, f"not a Parquet file ({exc})") from exc



def _row_group_start(pf: pq.ParquetFile, g: int) -> int:
    return sum(pf.metadata.row_group(i).num_rows for i in range(g))


def corrupt_error(path: str | os.PathLike[str], pf: pq.ParquetFile, g: int,
                  exc: BaseException, columns: list[str] | None = None) -> DataError:
    """A :class:`DataError` for row group ``g`` of ``path`` that failed to read with
    ``exc``: names the file, the first record of the group and the damaged column (found
    by reading the columns one by one)."""
    bad = None
    for c in columns or pf.schema_arrow.names:
        try:
            pf.read_row_group(g, columns=[c])
        except (pa.ArrowException, OSError):
            bad = c
            break
    start = _row_group_start(pf, g)
    n = pf.metadata.row_group(g).num_rows
    return DataError(path, start + 1, bad,
                     f"damaged file: row group {g} (records {start + 1}-{start + n}) cannot "
                     f"be read ({exc}); re-ingest it")


def read_row_group(path: str | os.PathLike[str], pf: pq.ParquetFile, g: int,
                   columns: list[str] | None = None) -> pa.Table:
    """``pf.read_row_group(g, columns)`` with page checksums verified.

    Raises
    ------
    DataError
        If a page fails its checksum or does not decode (file, record and column named).
    """
    try:
        return pf.read_row_group(g, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise corrupt_error(path, pf, g, exc, columns) from exc


def verify_pages(path: str | os.PathLike[str]) -> None:
    """Read every page of ``path`` with checksum verification (a full decode, ~1.5 s per
    200 MB), holding one row group in memory at a time.

    Raises
    ------
    DataError
        If the file is not Parquet or a page is damaged (file, record and column named).
    """
    pf = parquet_file(path)
    pool = pa.default_memory_pool()
    for g in range(pf.num_row_groups):
        read_row_group(path, pf, g)
        pool.release_unused()


def read_meta(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the ``(meta, report)`` dicts stored in a canonical event file.

    Raises
    ------
    DataError
        If the file is missing, not Parquet, or lacks the mmsim metadata keys.
    """
    md = parquet_file(path).schema_arrow.metadata or {}
    out = []
    for key in (META_KEY, REPORT_KEY):
        if key not in md:
            raise DataError(path, None, key.decode(), "missing mmsim metadata key")
        try:
            out.append(json.loads(md[key]))
        except json.JSONDecodeError as exc:
            raise DataError(path, None, key.decode(), f"invalid JSON ({exc})") from exc
    return out[0], out[1]


def iter_event_chunks(
    path: str | os.PathLike[str], chunk_rows: int = ROW_GROUP_ROWS
) -> Iterator[np.ndarray]:
    """Yield the events of a canonical file in chunks of at most ``chunk_rows`` records.

    Page checksums are verified as the row groups are read.

    Yields
    ------
    numpy.ndarray
        Shape ``(m,)``, dtype ``EVENT_DTYPE``, ``1 <= m <= chunk_rows``, in file order.

    Raises
    ------
    DataError
        If the file is missing, not Parquet or lacks an event column, or a page is damaged
        (checksum or decoding failure: file, first record of the row group and column
        named).
    """
    pf = parquet_file(path)
    missing = [n for n in EVENT_SCHEMA.names if n not in pf.schema_arrow.names]
    if missing:
        raise DataError(path, None, missing[0], "not a canonical event file: column missing")
    # one row group at a time (iter_batches reads ahead and the arrow pool keeps what it
    # freed, so memory would grow with the file), one column at a time into the group's
    # event array, each column's Arrow buffers handed back before the next is read: a group
    # is in memory once, plus one column
    pool = pa.default_memory_pool()
    for g in range(pf.num_row_groups):
        events = np.empty(pf.metadata.row_group(g).num_rows, dtype=EVENT_DTYPE)
        for name in EVENT_SCHEMA.names:
            col = read_row_group(path, pf, g, [name]).column(0)
            events[name] = col.to_numpy()
            del col
            pool.release_unused()
        for start in range(0, len(events), chunk_rows):
            yield events[start:start + chunk_rows]
        del events


def read_events(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a whole canonical event file (page checksums verified).

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``, dtype ``EVENT_DTYPE``.

    Raises
    ------
    DataError
        If the file is missing, not Parquet, lacks an event column or has a damaged page.
    """
    chunks = list(iter_event_chunks(path))
    if not chunks:
        return np.zeros(0, dtype=EVENT_DTYPE)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def is_canonical(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a Parquet file whose footer carries mmsim's ``mmsim.meta`` key
    (reads the footer only; False for a missing, unreadable or foreign file)."""
    try:
        md = pq.read_schema(path).metadata or {}
    except (pa.ArrowException, OSError):
        return False
    return META_KEY in md

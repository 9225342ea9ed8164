"""Streaming writers for exports: JSONL, CSV and Parquet, one record at a time.

No writer holds the export: JSONL and CSV write each record as it comes (through the
file's buffer), Parquet buffers at most ``row_group_size`` records, then writes them as
one row group. Every format keeps the fields the documentation does not list
(``Callback.extra``):

* JSONL: one object a line, the API's field names, extra fields merged in; times are
  ISO 8601 (``2026-03-05T14:30:00``), ``null`` for none; enums as their strings. UTF-8,
  with U+0085, U+2028 and U+2029 escaped, so no splitter finds a line break inside one.
* CSV: a header of the API's field names plus a last column ``extra`` holding the extra
  fields as one JSON object (empty when there are none): the header comes first, before
  the extra field names are known, so they cannot be columns of their own.
* Parquet: real types. Times are ``timestamp[us]`` (the API's wall-clock time, no zone;
  a time the server sent with an offset is converted to UTC); ``stage``, ``recipient``,
  ``status`` and ``campaign_name`` are dictionary-encoded; ``extra`` is a JSON string.

``flush()`` makes what was written durable and returns the output's size in bytes so far:
what a checkpoint records so a resumed export can truncate the partial output to it.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
from datetime import UTC, datetime
from typing import IO, Any, Protocol

import orjson

from ._models import CALLBACK_FIELDS, Callback

TIME_FIELDS = frozenset({"created_at", "callback_time", "modified_at"})
DICTIONARY_FIELDS = frozenset({"stage", "recipient", "status", "campaign_name"})
CSV_HEADER: tuple[str, ...] = (*CALLBACK_FIELDS, "extra")
FORMATS = ("jsonl", "csv", "parquet")


def record_dict(callback: Callback) -> dict[str, Any]:
    """The record keyed by the API's field names, extra fields merged in (documented
    fields win a clash); values stay Python objects (``datetime``, enum members)."""
    record: dict[str, Any] = dict(callback.extra) if callback.extra else {}
    for name in CALLBACK_FIELDS:
        record[name] = getattr(callback, name)
    return record


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class Writer(Protocol):
    def write(self, callback: Callback) -> None: ...

    def flush(self) -> int: ...

    def close(self) -> None: ...

    def discard(self) -> None: ...


#: Line breaks orjson leaves raw in strings (it escapes those below U+0020), as their
#: UTF-8 bytes and a JSON escape: Unicode-aware line splitters (Python's
#: ``str.splitlines``, editors) break a line at them, cutting a record in two. Each
#: byte sequence is only ever that character in UTF-8, so replacing it is exact.
_UNICODE_LINE_BREAKS = (
    ("\u0085".encode(), b"\\u0085"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


class JsonlWriter:
    """One JSON object a line."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle

    def write(self, callback: Callback) -> None:
        line = orjson.dumps(record_dict(callback), default=str)
        # The three start with byte C2 or E2: two memchr scans (an int operand; a bytes
        # one is a slower search) pass over most text, accented letters (C3 ..) included,
        # where the three replaces cost ~1 us a record.
        if not line.isascii() and (0xC2 in line or 0xE2 in line):
            for raw, escaped in _UNICODE_LINE_BREAKS:
                line = line.replace(raw, escaped)
        self._handle.write(line + b"\n")

    def flush(self) -> int:
        return durable(self._handle)

    def close(self) -> None:
        self._handle.flush()

    def discard(self) -> None:
        """The export failed: nothing to release (the caller owns the handle)."""


class _Utf8:
    """Where ``csv.writer`` writes: each string it gives, UTF-8 encoded, onto ``handle``.

    Not an ``io.TextIOWrapper``: one dropped without ``detach()`` (an export that fails
    never reaches ``close()``) closes the handle it wraps when it is collected, and
    that handle is the caller's: ``sys.stdout.buffer`` for ``--output -``.
    """

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle

    def write(self, text: str) -> int:
        return self._handle.write(text.encode("utf-8"))


class CsvWriter:
    """A header of the API's field names and ``extra``, then one row a record."""

    def __init__(self, handle: IO[bytes], *, header: bool = True) -> None:
        self._handle = handle
        self._csv = csv.writer(_Utf8(handle))
        if header:
            self._csv.writerow(CSV_HEADER)

    def write(self, callback: Callback) -> None:
        row = [_text(getattr(callback, name)) for name in CALLBACK_FIELDS]
        row.append(
            orjson.dumps(dict(callback.extra), default=str).decode() if callback.extra else ""
        )
        self._csv.writerow(row)

    def flush(self) -> int:
        return durable(self._handle)

    def close(self) -> None:
        self._handle.flush()  # the caller owns (and closes) the handle

    def discard(self) -> None:
        """The export failed: nothing to release (the caller owns the handle)."""


class ParquetWriter:
    """Row groups of ``row_group_size`` records, typed columns."""

    def __init__(self, handle: IO[bytes], *, row_group_size: int = 50_000) -> None:
        pa, pq = import_pyarrow()
        self._pa = pa
        fields = []
        for name in CALLBACK_FIELDS:
            if name in TIME_FIELDS:
                kind = pa.timestamp("us")
            elif name in DICTIONARY_FIELDS:
                kind = pa.dictionary(pa.int32(), pa.string())
            else:
                kind = pa.string()
            fields.append(pa.field(name, kind, nullable=name != "id"))
        fields.append(pa.field("extra", pa.string()))
        self._schema = pa.schema(fields)
        self._writer = pq.ParquetWriter(handle, self._schema)
        self._size = row_group_size
        self._columns: dict[str, list[Any]] = {f.name: [] for f in fields}
        self._handle = handle

    def write(self, callback: Callback) -> None:
        columns = self._columns
        for name in CALLBACK_FIELDS:
            value = getattr(callback, name)
            if name in TIME_FIELDS:
                if value is not None and value.tzinfo is not None:
                    value = value.astimezone(UTC).replace(tzinfo=None)
            elif value is not None:
                value = str(value)
            columns[name].append(value)
        columns["extra"].append(
            orjson.dumps(dict(callback.extra), default=str).decode() if callback.extra else None
        )
        if len(columns["id"]) >= self._size:
            self._write_group()

    def _write_group(self) -> None:
        if not self._columns["id"]:
            return
        table = self._pa.Table.from_pydict(self._columns, schema=self._schema)
        self._writer.write_table(table)
        for values in self._columns.values():
            values.clear()

    def flush(self) -> int:
        self._write_group()
        return durable(self._handle)

    def close(self) -> None:
        self._write_group()
        self._writer.close()

    def discard(self) -> None:
        """The export failed: close pyarrow's writer without its buffered rows, before
        the caller closes the handle. Left open, it closes itself when collected, onto
        the closed handle: "Exception ignored in ParquetWriter.__del__" and a traceback
        on stderr after the export's one-line error."""
        for values in self._columns.values():
            values.clear()
        with contextlib.suppress(Exception):  # the output is abandoned; the error stands
            self._writer.close()


def import_pyarrow() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or an ImportError saying how to install them."""
    try:
        import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]
    except ImportError as exc:  # pragma: no cover - pyarrow is in the dev environment
        raise ImportError(
            "Parquet output needs pyarrow: pip install 'convoso-async[parquet]'"
        ) from exc
    return pa, pq


def open_writer(fmt: str, handle: IO[bytes], *, resume: bool = False) -> Writer:
    """A writer of ``fmt`` on ``handle``; ``resume`` continues a partial file (no header)."""
    if fmt == "jsonl":
        return JsonlWriter(handle)
    if fmt == "csv":
        return CsvWriter(handle, header=not resume)
    if fmt == "parquet":
        if resume:
            raise ValueError("a partial Parquet file cannot be appended to")
        return ParquetWriter(handle)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")


#: What ``fsync`` fails with where it is not supported, as opposed to failing to write
#: (fsync(2) gives EROFS as well as EINVAL for a special file without synchronization).
_FSYNC_UNSUPPORTED = frozenset(
    {errno.EINVAL, errno.EROFS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}
)


def durable(handle: IO[bytes]) -> int:
    """Flush ``handle`` to the OS (and disk, for a real file); return its size so far."""
    handle.flush()
    try:
        fileno = handle.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return 0
    if os.isatty(fileno):
        return 0
    # Where fsync is not supported the size still counts (returning 0 here made a resume
    # truncate every completed window's records away).
    fsync_where_supported(fileno)
    return handle.tell() if handle.seekable() else 0


def fsync_where_supported(fileno: int) -> None:
    """``os.fsync(fileno)``, passing over a file system (or file) that does not support it.

    Pipes, and file systems without fsync (some FUSE, SMB and network mounts, Docker for
    Mac volumes): the bytes flushed to the OS survive a crashed process, which is what a
    resume recovers from. Any other failure (EIO, ENOSPC) may have lost bytes: raised
    rather than vouched for.
    """
    try:
        os.fsync(fileno)
    except OSError as exc:
        if exc.errno not in _FSYNC_UNSUPPORTED:
            raise

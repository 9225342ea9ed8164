"""The export writers on their own: what each format holds for a record, where the CLI's
export through the emulator does not reach (a clash of extra and documented fields, an
empty cell, an offset time, row-group boundaries, a pipe)."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]
import pytest

from convoso_async import Callback
from convoso_async._writers import (
    CSV_HEADER,
    CsvWriter,
    JsonlWriter,
    ParquetWriter,
    durable,
    open_writer,
    record_dict,
)


def test_documented_fields_win_a_clash_with_extra_fields() -> None:
    callback = Callback(id="7", stage="PENDING", extra={"id": "not-7", "stage": "x", "k": 1})
    record = record_dict(callback)
    assert record["id"] == "7"
    assert record["stage"] == "PENDING"
    assert record["k"] == 1


def test_jsonl_escapes_a_lone_next_line_character() -> None:
    # U+0085 is C2 85 in UTF-8: a record holding it and no E2 byte (U+2028, U+2029)
    # must still have it escaped, or str.splitlines() cuts the record in two.
    handle = io.BytesIO()
    JsonlWriter(handle).write(Callback(id="1", comments="caf\u00e9\u0085next"))
    text = handle.getvalue().decode()
    assert text.count("\n") == 1
    (line,) = text.splitlines()
    assert json.loads(line)["comments"] == "caf\u00e9\u0085next"


def _csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def test_csv_leaves_a_missing_value_and_no_extra_fields_empty() -> None:
    handle = io.BytesIO()
    writer = CsvWriter(handle)
    writer.write(Callback(id="1"))
    writer.close()
    header, row = _csv_rows(handle.getvalue())
    assert tuple(header) == CSV_HEADER
    assert row == ["1"] + [""] * (len(CSV_HEADER) - 1)  # not "None", not "{}"


def test_csv_quotes_what_would_break_a_row() -> None:
    comments = 'said "call me", then\r\nhung up; ok'
    handle = io.BytesIO()
    writer = CsvWriter(handle, header=False)
    writer.write(Callback(id="1", comments=comments, extra={"note": "a,b"}))
    (row,) = _csv_rows(handle.getvalue())
    record = dict(zip(CSV_HEADER, row, strict=True))
    assert record["comments"] == comments
    assert json.loads(record["extra"]) == {"note": "a,b"}


def test_parquet_holds_a_time_sent_with_an_offset_in_utc(tmp_path: Path) -> None:
    path = tmp_path / "cb.parquet"
    sent = datetime(2026, 3, 5, 14, 30, tzinfo=timezone(timedelta(hours=-5)))
    with path.open("wb") as handle:
        writer = ParquetWriter(handle)
        writer.write(Callback(id="1", callback_time=sent, created_at=datetime(2026, 3, 3, 10)))
        writer.close()
    table = pq.read_table(path)
    assert table.column("callback_time").to_pylist() == [datetime(2026, 3, 5, 19, 30)]
    assert table.column("created_at").to_pylist() == [datetime(2026, 3, 3, 10)]  # as sent
    assert table.schema.field("callback_time").type.tz is None
    # Every record has an id: the one column that is never null.
    assert not table.schema.field("id").nullable
    assert table.schema.field("lead_id").nullable


def test_parquet_row_groups_hold_at_most_row_group_size_records(tmp_path: Path) -> None:
    path = tmp_path / "cb.parquet"
    with path.open("wb") as handle:
        writer = ParquetWriter(handle, row_group_size=2)
        for n in range(5):
            writer.write(Callback(id=str(n)))
        writer.close()
    meta = pq.read_metadata(path)
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes == [2, 2, 1]


def test_parquet_flush_writes_the_buffered_records(tmp_path: Path) -> None:
    # flush() vouches for what was written so far: the buffered rows go out as a group.
    path = tmp_path / "cb.parquet"
    with path.open("wb") as handle:
        writer = ParquetWriter(handle)
        for n in range(3):
            writer.write(Callback(id=str(n)))
        size = writer.flush()
        assert size == handle.tell() == path.stat().st_size > 0
        writer.write(Callback(id="3"))
        writer.close()
    meta = pq.read_metadata(path)
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [3, 1]
    assert pq.read_table(path).column("id").to_pylist() == ["0", "1", "2", "3"]


def test_open_writer_refuses_what_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="cannot be appended to"):
        open_writer("parquet", io.BytesIO(), resume=True)
    with pytest.raises(ValueError, match="format must be one of jsonl, csv, parquet, not 'xml'"):
        open_writer("xml", io.BytesIO())
    resumed = io.BytesIO()
    open_writer("csv", resumed, resume=True).write(Callback(id="1"))
    assert _csv_rows(resumed.getvalue())[0][0] == "1"  # no header on a resumed CSV


def test_durable_on_a_pipe_vouches_for_no_size() -> None:
    # A pipe has no size to truncate a resume to (and no fsync): 0, not an OSError.
    read_fd, write_fd = os.pipe()
    try:
        with open(write_fd, "wb", closefd=True) as handle:
            handle.write(b"{}\n")
            assert durable(handle) == 0
        assert os.read(read_fd, 10) == b"{}\n"  # flushed through
    finally:
        os.close(read_fd)

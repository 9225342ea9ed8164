"""The ``convoso-async`` command line, in-process through ``main(argv)``, against the emulator.

``main`` runs its own event loop, so the emulator is served from a thread with its own
loop for the module. Stores are small and seeded; the planner's cap is lowered where a
test needs several windows without a big store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import errno
import functools
import gc
import io
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]
import pytest
from rich.console import Console

from convoso_async import Callback, ConvosoClient, RetryPolicy, _export, _writers, cli
from convoso_async import _protocol as proto
from convoso_async._export import ExportWindow
from convoso_async._writers import CSV_HEADER, Writer
from convoso_async.testing import ConvosoEmulator

SECRET = "tok-5f1c7a9e-never-print-me"
RANGE = ["--start-date", "2026-03-01", "--end-date", "2026-03-30"]


class Served:
    """An emulator serving from a background thread's event loop."""

    def __init__(self, emulator: ConvosoEmulator) -> None:
        self.emu = emulator
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(emulator.start())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def close(self) -> None:
        self.call(self.emu.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    # The live dialect: extra fields, null times, MISSED stages, odd spellings.
    server = Served(ConvosoEmulator(4_000, seed=9, live_dialect=True, auth_token=SECRET))
    yield server
    server.close()


@pytest.fixture
def emu(served: Served, monkeypatch: pytest.MonkeyPatch) -> ConvosoEmulator:
    monkeypatch.setenv("CONVOSO_BASE_URL", served.emu.base_url)
    monkeypatch.setenv("CONVOSO_AUTH_TOKEN", SECRET)
    served.emu.clear_script()
    served.emu.reset_stats()
    return served.emu


@pytest.fixture
def fast_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's client with millisecond retries, so failure tests stay fast."""
    retry = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.002)
    monkeypatch.setattr(cli, "ConvosoClient", functools.partial(ConvosoClient, retry=retry))


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_jsonl_iso_times_enum_strings_and_extra_fields(
    emu: ConvosoEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cb.jsonl"
    assert cli.main(["export", *RANGE, "--format", "jsonl", "--output", str(out)]) == 0
    records = lines(out)
    assert len(records) == len(emu.store)
    assert {r["id"] for r in records} == set(emu.store.ids())
    first = records[0]
    assert first["callback_time"][10] == "T"  # ISO 8601
    original = emu.store.get(first["id"])
    assert original is not None
    extra = set(original) - set(CSV_HEADER)
    assert extra  # the live dialect sends undocumented fields: they are kept
    assert all(first[name] == original[name] for name in extra)
    assert any(r["modified_at"] is None for r in records)  # null for none
    assert {r["stage"] for r in records} >= {"PAST_DUE", "DISMISSED", "MISSED"}
    assert {r["recipient"] for r in records} >= {"system", "personal", "USERONLY"}
    err = capsys.readouterr().err
    assert "exported 4,000 callbacks" in err
    assert "(1 probe, 1 page, " in err  # not "1 probes": the 30 days are under the cap
    assert [p.name for p in tmp_path.iterdir()] == ["cb.jsonl"]  # no temporary left


def test_the_closing_line_stays_one_line_in_a_log(
    emu: ConvosoEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Off a terminal rich broke it at 80 columns, splitting a long path across lines.
    out = tmp_path / ("a-rather-long-directory-name-for-exports-" * 2) / "callbacks.jsonl"
    out.parent.mkdir()
    assert cli.main(["export", *RANGE, "-o", str(out)]) == 0
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"exported 4,000 callbacks to {out} in ")


def test_export_jsonl_escapes_unicode_line_breaks(
    emu: ConvosoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # orjson leaves U+0085, U+2028 and U+2029 raw: str.splitlines() (the `lines` helper,
    # editors) cut such a record in two, and neither half was JSON.
    name = "Zo\u00eb\u2028Smith\u2029 \U0001f600 \u0085x"
    store = emu.store
    monkeypatch.setattr(store, "users", tuple(replace(u, name=name) for u in store.users))
    out = tmp_path / "cb.jsonl"
    assert cli.main(["export", *RANGE, "-o", str(out), "-q"]) == 0
    records = lines(out)
    assert len(records) == len(store)
    assert {r["user"] for r in records} <= {name, ""}  # "": a record with no user
    assert any(r["user"] == name for r in records)
    assert "\U0001f600".encode() in out.read_bytes()  # the rest stays raw UTF-8


def test_export_csv_header_and_extra_column(emu: ConvosoEmulator, tmp_path: Path) -> None:
    out = tmp_path / "cb.csv"
    assert cli.main(["export", *RANGE, "--format", "csv", "-o", str(out), "-q"]) == 0
    with out.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_HEADER
    assert len(rows) == 1 + len(emu.store)
    row = dict(zip(rows[0], rows[1], strict=True))
    original = emu.store.get(row["id"])
    assert original is not None
    extra = json.loads(row["extra"])
    assert extra == {k: v for k, v in original.items() if k not in CSV_HEADER}
    assert row["callback_time"][10] == "T"


def test_export_parquet_real_types(emu: ConvosoEmulator, tmp_path: Path) -> None:
    out = tmp_path / "cb.parquet"
    assert cli.main(["export", *RANGE, "--format", "parquet", "-o", str(out), "-q"]) == 0
    table = pq.read_table(out)
    assert table.num_rows == len(emu.store)
    assert set(table.column("id").to_pylist()) == set(emu.store.ids())
    schema = table.schema
    for name in ("created_at", "callback_time", "modified_at"):
        assert pa.types.is_timestamp(schema.field(name).type)
    for name in ("stage", "recipient", "status", "campaign_name"):
        assert pa.types.is_dictionary(schema.field(name).type)
    assert table.column("modified_at").null_count > 0
    extra = json.loads(table.column("extra")[0].as_py())
    original = emu.store.get(table.column("id")[0].as_py())
    assert original is not None
    assert extra == {k: v for k, v in original.items() if k not in CSV_HEADER}


def test_export_to_stdout_with_several_stages(
    emu: ConvosoEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", *RANGE, "--stage", "PENDING", "--stage", "MISSED", "-o", "-", "-q"]
    assert cli.main(argv) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = {i for i in emu.store.ids() if emu.store.get(i)["stage"] in ("PENDING", "MISSED")}  # type: ignore[index]
    assert {r["id"] for r in records} == expected
    assert len(records) == len(expected)


def test_export_a_repeated_stage_once(
    emu: ConvosoEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    # --stage PENDING --stage PENDING exported every PENDING record twice.
    argv = ["export", *RANGE, "--stage", "PENDING", "--stage", "MISSED", "--stage", "pending"]
    assert cli.main([*argv, "-o", "-", "-q"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))
    assert [r["stage"] for r in records[:1]] == ["PENDING"]  # in the order first given
    assert {r["stage"] for r in records} == {"PENDING", "MISSED"}


def test_export_takes_a_stage_as_the_library_spells_it(
    emu: ConvosoEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    # --stage PASTDUE (a help page's spelling, read by the library) was a usage error.
    assert cli.main(["export", *RANGE, "--stage", "pastdue", "-o", "-", "-q"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    stages = {i: emu.store.get(i)["stage"] for i in emu.store.ids()}  # type: ignore[index]
    expected = {i for i, stage in stages.items() if stage.upper() in ("PAST_DUE", "PASTDUE")}
    assert expected
    assert {r["id"] for r in records} == expected
    assert cli.main(["export", *RANGE, "--stage", "SOON", "-o", "-", "-q"]) == 2
    assert "invalid choice: 'SOON'" in capsys.readouterr().err


def test_a_callback_whose_stage_changes_between_stages_is_exported_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each --stage ran its own export and de-duplication: a PENDING callback dismissed
    # while the PENDING export ran was written again by the DISMISSED one.
    server = Served(ConvosoEmulator(500, seed=3, auth_token=SECRET))
    try:
        monkeypatch.setenv("CONVOSO_BASE_URL", server.emu.base_url)
        monkeypatch.setenv("CONVOSO_AUTH_TOKEN", SECRET)
        moved: list[str] = []
        real_open_writer = cli.open_writer

        def open_writer(*args: Any, **kwargs: Any) -> Writer:
            writer = real_open_writer(*args, **kwargs)
            write = writer.write

            def write_then_dismiss(callback: Callback) -> None:
                write(callback)
                if not moved:  # the first PENDING callback written: dismissed now
                    moved.append(callback.id)

                    async def dismiss() -> bool:
                        return server.emu.store.update(callback.id, dismiss=True)

                    assert server.call(dismiss())

            monkeypatch.setattr(writer, "write", write_then_dismiss)
            return writer

        monkeypatch.setattr(cli, "open_writer", open_writer)
        argv = ["export", *RANGE, "--stage", "PENDING", "--stage", "DISMISSED", "-o", "-", "-q"]
        assert cli.main(argv) == 0
        records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    finally:
        server.close()
    ids = [r["id"] for r in records]
    assert moved
    assert ids.count(moved[0]) == 1
    assert len(ids) == len(set(ids))


def test_export_to_a_closed_pipe_ends_quietly(emu: ConvosoEmulator) -> None:
    # `export -o - | head -1`: stdout closes early. It printed "error: BrokenPipeError", exit 3.
    argv = [sys.executable, "-m", "convoso_async", "export", *RANGE, "-o", "-", "-q"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert json.loads(process.stdout.readline())["id"]
        process.stdout.close()  # the rest (~1.5 MB) cannot fit in the pipe: a write fails
        err = process.stderr.read()
        assert process.wait(timeout=60) == 141
    assert err == b""


class _WindowsClosedPipe(io.RawIOBase):
    """A pipe whose reader has gone, as Windows reports it: EINVAL, not EPIPE (CPython
    issue 79935), once the first record was taken."""

    def __init__(self) -> None:
        self.taken = b""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if b"\n" in self.taken:
            raise OSError(errno.EINVAL, "Invalid argument")
        self.taken += bytes(data)
        return len(data)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_to_a_closed_pipe_ends_quietly_on_windows(
    emu: ConvosoEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
) -> None:
    # `export -o - | head -1` on Windows: the write fails with EINVAL, and the export
    # ended "error: OSError: [Errno 22] Invalid argument", exit 3, not quietly with 141.
    pipe = _WindowsClosedPipe()
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BufferedWriter(pipe, 4096)))
    assert cli.main(["export", *RANGE, "--format", fmt, "-o", "-", "-q"]) == 141
    assert capsys.readouterr().err == ""
    assert pipe.taken


def test_an_invalid_argument_off_windows_is_not_taken_for_a_closed_pipe(
    emu: ConvosoEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BufferedWriter(_WindowsClosedPipe())))
    assert cli.main(["export", *RANGE, "-o", "-", "-q"]) == 3
    assert capsys.readouterr().err == "error: OSError: [Errno 22] Invalid argument\n"


def test_export_to_a_closed_stdout_is_exit_3_before_any_request(
    emu: ConvosoEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `export -o - >&-` (or a daemon started with stdout closed): Python's sys.stdout is
    # None, and the export crashed with an AttributeError traceback, exit 1.
    monkeypatch.setattr(sys, "stdout", None)
    assert cli.main(["export", *RANGE, "-o", "-", "-q"]) == 3
    assert capsys.readouterr().err == "error: OSError: --output -: stdout is closed\n"
    assert emu.requests == []


@pytest.mark.usefixtures("fast_client")
def test_a_failed_csv_export_to_stdout_leaves_stdout_open(
    emu: ConvosoEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CSV writer's TextIOWrapper, never detached when the export failed, closed
    # sys.stdout.buffer once collected: the caller's next print raised ValueError.
    emu.script([None, None, *["status_503"] * 40])  # the probe, the first page, then 503s
    argv = ["export", *RANGE, "--format", "csv", "-o", "-", "-q", "--page-size", "500"]
    assert cli.main(argv) == 1
    gc.collect()
    assert not sys.stdout.buffer.closed
    print("still writable")
    out = capsys.readouterr().out
    assert out.startswith(",".join(CSV_HEADER) + "\r\n")
    assert out.endswith("\r\nstill writable\n")


def test_usage_errors_are_one_line_exit_2(
    emu: ConvosoEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["export", *RANGE, "--format", "parquet", "-o", "-"]) == 2
    err = capsys.readouterr().err
    assert err == "error: ValueError: parquet output cannot go to stdout: pass --output PATH\n"
    out = str(tmp_path / "x.parquet")
    argv = ["export", *RANGE, "--format", "parquet", "-o", out, "--checkpoint", out + ".ck"]
    assert cli.main(argv) == 2
    assert "--checkpoint needs --format jsonl or csv" in capsys.readouterr().err
    assert (
        cli.main(["export", "--start-date", "2026-03-31", "--end-date", "2026-03-01", "-o", out])
        == 2
    )
    assert "after end_date" in capsys.readouterr().err
    assert cli.main(["export", "--start-date", "March", "--end-date", "2026-03-01", "-o", out]) == 2
    assert cli.main(["search", "--limit", "0"]) == 2
    assert capsys.readouterr().err.startswith("usage:")
    assert not any(tmp_path.iterdir())


def test_no_token_is_a_usage_error(
    emu: ConvosoEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CONVOSO_AUTH_TOKEN")
    assert cli.main(["search"]) == 2
    assert "set CONVOSO_AUTH_TOKEN or pass --auth-token-file" in capsys.readouterr().err


def test_auth_token_file_and_the_token_never_printed(
    emu: ConvosoEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("CONVOSO_AUTH_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text(SECRET + "\n")
    out = tmp_path / "cb.csv"
    argv = ["export", *RANGE, "--format", "csv", "-o", str(out), "--verbose"]
    assert cli.main([*argv, "--auth-token-file", str(token_file)]) == 0
    captured = capsys.readouterr()
    assert "DEBUG convoso_async: POST callbacks/search" in captured.err  # verbose is on
    assert len(out.read_text().splitlines()) > len(emu.store)
    # A wrong token fails typed, and neither token shows anywhere.
    wrong = "tok-wrong-0d6e-also-secret"
    token_file.write_text(wrong)
    assert cli.main([*argv, "--auth-token-file", str(token_file)]) == 1
    failed = capsys.readouterr()
    assert failed.err.splitlines()[-1].startswith("error: AuthenticationError: callbacks/search: ")
    everything = captured.out + captured.err + failed.out + failed.err + caplog.text
    assert SECRET not in everything
    assert wrong not in everything
    assert cli.main([*argv, "--auth-token-file", str(tmp_path / "missing")]) == 3
    assert "No such file" in capsys.readouterr().err
    token_file.write_text("\n")
    assert cli.main([*argv, "--auth-token-file", str(token_file)]) == 2
    capsys.readouterr()
    # Not UTF-8: an unreadable token file, exit 3 as documented (it was 2).
    token_file.write_bytes(b"\xff\xfe" + SECRET.encode())
    assert cli.main([*argv, "--auth-token-file", str(token_file)]) == 3
    err = capsys.readouterr().err
    assert err == f"error: OSError: --auth-token-file {token_file} is not UTF-8 text (byte 0)\n"


def test_a_token_file_saved_with_a_bom_and_crlf_holds_just_the_token(
    emu: ConvosoEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Notepad and Windows PowerShell's Set-Content -Encoding utf8 start the file with a
    # BOM: it was sent as part of the token, a right token refused (exit 1,
    # AuthenticationError) with nothing to say why.
    monkeypatch.delenv("CONVOSO_AUTH_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_bytes(b"\xef\xbb\xbf" + SECRET.encode() + b"\r\n")
    assert cli.main(["search", "--limit", "1", "--auth-token-file", str(token_file)]) == 0
    assert capsys.readouterr().err == ""  # the emulator took it: exactly SECRET


@pytest.mark.usefixtures("fast_client")
def test_a_failed_export_leaves_no_output_file(
    emu: ConvosoEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cb.jsonl"
    out_before = tmp_path / "keep.jsonl"
    out_before.write_text("old\n")
    emu.script([None, None, *["status_503"] * 40])  # the probe, the first page, then 503s
    argv = ["export", *RANGE, "-o", str(out), "--verbose", "--page-size", "500"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: ServerError: callbacks/search: ")
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.jsonl"]
    # Over an existing file, a failure leaves the old content untouched.
    emu.clear_script()
    emu.script([None, *["status_503"] * 40])
    assert cli.main(["export", *RANGE, "-o", str(out_before), "-q", "--page-size", "500"]) == 1
    assert out_before.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.jsonl"]


@pytest.mark.usefixtures("fast_client")
def test_a_failed_parquet_export_prints_one_line_and_no_traceback(
    emu: ConvosoEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # pyarrow's writer, never closed when the export failed, closed itself when collected,
    # onto the temporary file abandon() had closed: "Exception ignored in:
    # <function ParquetWriter.__del__>" and a traceback after the one-line error.
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    emu.script([None, None, *["status_503"] * 40])  # the probe, the first page, then 503s
    argv = ["export", *RANGE, "--format", "parquet", "-o", str(tmp_path / "cb.parquet")]
    assert cli.main([*argv, "-q", "--page-size", "500"]) == 1
    gc.collect()
    assert [u.exc_value for u in unraisable] == []
    err = capsys.readouterr().err
    assert err.startswith("error: ServerError: callbacks/search: ")
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
    # A writer whose output already failed (its footer cannot be written) is discarded
    # without raising over the export's own error.
    with (tmp_path / "dead.parquet").open("wb") as handle:
        writer = _writers.ParquetWriter(handle)
    writer.discard()
    del writer
    gc.collect()
    assert [u.exc_value for u in unraisable] == []


def test_an_unwritable_output_is_exit_3(
    emu: ConvosoEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["export", *RANGE, "-o", str(tmp_path / "no" / "such" / "dir.jsonl")]) == 3
    assert capsys.readouterr().err.startswith("error: FileNotFoundError: ")


def test_an_unreadable_checkpoint_is_exit_3_before_any_request(
    emu: ConvosoEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "cb.jsonl"
    ckpt = tmp_path / "cb.ckpt"
    ckpt.write_text("{}")
    read_text = Path.read_text

    def refused(path: Path, *args: Any, **kwargs: Any) -> str:
        if path == ckpt:  # as for a file of another user (the tests may run as root)
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refused)
    argv = ["export", *RANGE, "-o", str(out), "--checkpoint", str(ckpt), "-q"]
    assert cli.main(argv) == 3
    assert capsys.readouterr().err.startswith("error: PermissionError: ")
    assert emu.requests == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cb.ckpt"]


@pytest.fixture
def umask_027() -> Iterator[None]:
    previous = os.umask(0o027)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("umask_027")
@pytest.mark.parametrize("checkpoint", [False, True])
def test_export_output_mode_follows_the_umask(
    emu: ConvosoEmulator, tmp_path: Path, checkpoint: bool
) -> None:
    # Without --checkpoint the output was a renamed mkstemp file: 0600 whatever the umask.
    out = tmp_path / "cb.jsonl"
    argv = ["export", *RANGE, "-o", str(out), "-q"]
    if checkpoint:
        argv += ["--checkpoint", str(tmp_path / "cb.ckpt")]
    assert cli.main(argv) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["cb.jsonl"]


@pytest.fixture
def checkpointed_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path, list[str]]:
    """The output, the checkpoint and the argv of a quiet, checkpointed CSV export of
    RANGE that a planner cap of 800 makes several windows (4,000 records)."""
    monkeypatch.setattr(proto, "REACHABLE", 800)
    out = tmp_path / "cb.csv"
    ckpt = tmp_path / "cb.ckpt"
    argv = ["export", *RANGE, "--format", "csv", "-o", str(out), "--checkpoint", str(ckpt)]
    return out, ckpt, [*argv, "-q"]


@pytest.mark.usefixtures("fast_client")
def test_checkpoint_resume_appends_the_rest_and_skips_completed_windows(
    emu: ConvosoEmulator,
    tmp_path: Path,
    checkpointed_csv: tuple[Path, Path, list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, ckpt, argv = checkpointed_csv
    argv += ["--concurrency", "1"]
    # 1 + 30 probes, then the first windows' pages, then the server fails for good.
    emu.script([*[None] * 36, *["status_503"] * 40])
    assert cli.main(argv) == 1
    capsys.readouterr()
    assert not out.exists()
    saved = json.loads(ckpt.read_text())
    done = [ExportWindow.from_json(saved["windows"][i]) for i in saved["done"]]
    assert 0 < len(done) < len(saved["windows"])
    partial = tmp_path / ".cb.csv.partial"
    assert partial.stat().st_size >= saved["state"]["output_bytes"]
    emu.clear_script()
    emu.reset_stats()
    assert cli.main(argv) == 0
    with out.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_HEADER
    ids = [row[0] for row in rows[1:]]
    assert len(ids) == len(set(ids)) == len(emu.store)
    assert set(ids) == set(emu.store.ids())
    forms = [r.form for r in emu.requests]
    assert all(f["limit"] != "1" for f in forms)  # no probes on resume
    for window in done:
        assert not any(f["start_date"] == str(window.start) for f in forms)
    assert not ckpt.exists()
    assert not partial.exists()
    # A checkpoint whose partial output is gone cannot be resumed silently.
    ckpt.write_text(json.dumps(saved))
    assert cli.main(argv) == 2
    assert "remove the checkpoint to start over" in capsys.readouterr().err
    saved["state"]["format"] = "jsonl"
    ckpt.write_text(json.dumps(saved))
    partial.write_text("x" * saved["state"]["output_bytes"])
    assert cli.main(argv) == 2
    assert "written for --format jsonl" in capsys.readouterr().err


@pytest.mark.usefixtures("fast_client")
def test_a_resumed_export_reports_the_records_in_its_output(
    emu: ConvosoEmulator,
    checkpointed_csv: tuple[Path, Path, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The closing line counted only the records fetched since the resume ("exported
    # 2,431 callbacks to cb.csv") for a file holding all 4,000.
    out, ckpt, argv = checkpointed_csv
    argv = [*(a for a in argv if a != "-q"), "--concurrency", "1"]
    monkeypatch.setenv("COLUMNS", "300")  # the line unwrapped
    emu.script([*[None] * 36, *["status_503"] * 40])
    assert cli.main(argv) == 1
    before = json.loads(ckpt.read_text())["records_done"]
    assert 0 < before < len(emu.store)
    capsys.readouterr()
    emu.clear_script()
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    with out.open(newline="") as handle:
        assert len(list(csv.reader(handle))) - 1 == len(emu.store)
    assert f"exported {len(emu.store):,} callbacks to {out} ({before:,} of them " in err


@pytest.fixture
def fsync_fails_on(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``fail(path, errno)``: from now on ``os.fsync`` of ``path`` raises that error
    (as on a file system without fsync, or a failing disk); other files sync as usual."""
    fsync = os.fsync

    def fail(path: Path, code: int) -> None:
        def patched(fd: int) -> None:
            if path.exists() and os.path.samestat(os.fstat(fd), path.stat()):
                raise OSError(code, os.strerror(code))
            fsync(fd)

        monkeypatch.setattr(os, "fsync", patched)

    return fail


def _whole_then_checkpointed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> tuple[Path, Path, Path, list[str]]:
    """Export RANGE uninterrupted to ``whole.FMT`` (several windows, under a planner cap
    of 800), for a resumed export to be compared with; then the output, the checkpoint
    and the argv of the same export, checkpointed, not run yet."""
    monkeypatch.setattr(proto, "REACHABLE", 800)
    argv = ["export", *RANGE, "--format", fmt, "--concurrency", "1", "-q"]
    whole = tmp_path / f"whole.{fmt}"
    assert cli.main([*argv, "-o", str(whole)]) == 0
    out, ckpt = tmp_path / f"cb.{fmt}", tmp_path / "cb.ckpt"
    return whole, out, ckpt, [*argv, "-o", str(out), "--checkpoint", str(ckpt)]


@pytest.mark.usefixtures("fast_client")
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_resume_where_fsync_is_not_supported_gives_the_uninterrupted_output(
    emu: ConvosoEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fsync_fails_on: Any,
    fmt: str,
) -> None:
    # Where fsync is not supported (EINVAL: some FUSE and network mounts) the checkpoint
    # vouched for 0 bytes of output, so the resume truncated every completed window's
    # records away and exited 0 with only the rest (a CSV without its header).
    whole, out, ckpt, argv = _whole_then_checkpointed(tmp_path, monkeypatch, fmt)
    fsync_fails_on(tmp_path / f".cb.{fmt}.partial", errno.EINVAL)
    emu.script([*[None] * 36, *["status_503"] * 40])
    assert cli.main(argv) == 1
    capsys.readouterr()
    saved = json.loads(ckpt.read_text())
    assert saved["done"]
    assert saved["state"]["output_bytes"] > 0
    emu.clear_script()
    assert cli.main(argv) == 0
    assert out.read_bytes() == whole.read_bytes()


def test_an_output_that_fails_to_sync_fails_the_export(
    emu: ConvosoEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], fsync_fails_on: Any
) -> None:
    # EIO from fsync was swallowed: the export "succeeded" (exit 0) over a failing disk,
    # and a checkpoint vouched for 0 bytes.
    out = tmp_path / "cb.jsonl"
    ckpt = tmp_path / "cb.ckpt"
    fsync_fails_on(tmp_path / ".cb.jsonl.partial", errno.EIO)
    assert cli.main(["export", *RANGE, "-o", str(out), "--checkpoint", str(ckpt), "-q"]) == 3
    assert capsys.readouterr().err.startswith("error: OSError: [Errno 5] ")
    assert not out.exists()


def test_fsync_refused_as_a_special_file_still_vouches_for_the_bytes(
    tmp_path: Path, fsync_fails_on: Any
) -> None:
    # fsync(2): "EROFS, EINVAL: fd is bound to a special file ... which does not support
    # synchronization". EROFS was taken for a lost write and failed the export (exit 3).
    path = tmp_path / "out.jsonl"
    with path.open("wb") as handle:
        handle.write(b"{}\n")
        fsync_fails_on(path, errno.EROFS)
        assert _writers.durable(handle) == 3


def _library_checkpoint(emu: ConvosoEmulator, path: Path) -> None:
    """A checkpoint as the library's export writes it (no ``before_checkpoint`` state),
    left behind after its first window, as a program stopped there would leave it."""

    async def run() -> None:
        async with ConvosoClient(SECRET, base_url=emu.base_url) as client:
            export = client.callbacks.export("2026-03-01", "2026-03-30", checkpoint=path)
            async with export:
                async for _ in export:
                    if export.progress.windows_done:
                        break

    asyncio.run(run())


@pytest.mark.parametrize(
    "state",
    [
        None,
        {"format": "jsonl"},
        {"format": "jsonl", "output_bytes": -1},
        {"format": "jsonl", "output_bytes": True},  # a JSON bool is no size (True == 1)
        {"output_bytes": 0},
    ],
)
def test_resume_refuses_a_checkpoint_with_done_windows_but_no_output_state(
    emu: ConvosoEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    state: dict[str, Any] | None,
) -> None:
    # It exported only the windows left, exit 0 (state None), or raised KeyError.
    monkeypatch.setattr(proto, "REACHABLE", 800)
    ckpt = tmp_path / "cb.ckpt"
    _library_checkpoint(emu, ckpt)
    saved = json.loads(ckpt.read_text())
    assert saved["done"]
    saved["state"] = state
    ckpt.write_text(json.dumps(saved))
    out = tmp_path / "cb.jsonl"
    assert cli.main(["export", *RANGE, "-o", str(out), "--checkpoint", str(ckpt), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ValueError: checkpoint ")
    assert "remove it to start over" in err
    assert json.loads(ckpt.read_text()) == saved  # the resume point is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cb.ckpt"]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_the_output_is_on_disk_before_its_rename_and_the_rename_after(
    emu: ConvosoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # Renamed without a sync, a power cut could leave a truncated file under the name.
    events: list[tuple[str, int]] = []
    fsync, replace = os.fsync, os.replace

    def synced(fd: int) -> None:
        events.append(("fsync", os.fstat(fd).st_ino))
        fsync(fd)

    def renamed(src: Any, dst: Any) -> None:
        events.append(("replace", os.stat(src).st_ino))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", synced)
    monkeypatch.setattr(os, "replace", renamed)
    out = tmp_path / f"cb.{fmt}"
    assert cli.main(["export", *RANGE, "--format", fmt, "-o", str(out), "-q"]) == 0
    file, directory = out.stat().st_ino, tmp_path.stat().st_ino
    assert ("replace", file) in events
    rename = events.index(("replace", file))
    assert ("fsync", file) in events[:rename]
    assert ("fsync", directory) in events[rename:]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_without_a_checkpoint_the_output_is_synced_once_not_window_by_window(
    emu: ConvosoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # The writer was flushed at the end of every window for a checkpoint that is never
    # written: an fsync of the temporary output a window, and a Parquet row group a
    # window (six of ~700 rows here) instead of one of up to 50,000.
    monkeypatch.setattr(proto, "REACHABLE", 800)
    synced: list[int] = []
    fsync = os.fsync

    def counted(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", counted)
    out = tmp_path / f"cb.{fmt}"
    assert cli.main(["export", *RANGE, "--format", fmt, "-o", str(out), "-q"]) == 0
    assert synced.count(out.stat().st_ino) == 1  # before the rename
    assert _record_count(out, fmt) == len(emu.store)
    if fmt == "parquet":
        assert pq.read_metadata(out).num_row_groups == 1


def test_a_checkpoint_that_cannot_be_written_is_refused_before_any_request(
    emu: ConvosoEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It was found only after the planning requests, leaving an empty .partial behind.
    out = tmp_path / "cb.jsonl"
    for ckpt in (tmp_path / "no-such-dir" / "cb.ckpt", tmp_path):
        assert cli.main(["export", *RANGE, "-o", str(out), "--checkpoint", str(ckpt)]) == 2
        assert "--checkpoint" in capsys.readouterr().err
    assert emu.requests == []
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_is_a_directory_is_refused_before_any_request(
    emu: ConvosoEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It exported everything, deleted the checkpoint, then failed to rename onto -o (exit 3).
    out = tmp_path / "cb.jsonl"
    out.mkdir()
    ckpt = tmp_path / "cb.ckpt"
    assert cli.main(["export", *RANGE, "-o", str(out), "--checkpoint", str(ckpt)]) == 2
    assert capsys.readouterr().err == f"error: ValueError: --output {out} is a directory\n"
    assert emu.requests == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cb.jsonl"]


@pytest.mark.parametrize("checkpoint", [False, True])
def test_an_output_symlink_is_followed_not_replaced(
    emu: ConvosoEmulator, tmp_path: Path, checkpoint: bool
) -> None:
    # The temporary file was renamed over the link, leaving its target untouched.
    real = tmp_path / "real"
    real.mkdir()
    target = real / "cb.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    argv = ["export", *RANGE, "-o", str(link), "-q"]
    if checkpoint:
        argv += ["--checkpoint", str(tmp_path / "cb.ckpt")]
    assert cli.main(argv) == 0
    assert link.is_symlink()
    assert len(lines(target)) == len(emu.store)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl", "real"]
    assert [p.name for p in real.iterdir()] == ["cb.jsonl"]


@pytest.mark.parametrize("checkpoint", [False, True])
def test_an_output_windows_will_not_let_be_replaced_is_refused_before_any_request(
    emu: ConvosoEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    checkpoint: bool,
) -> None:
    # Windows refuses to replace a file another program holds open (Excel locks the CSV
    # it shows) or one marked read-only: the export fetched every record, then failed the
    # rename (exit 3) and deleted the complete temporary file with them.
    out = tmp_path / "cb.csv"
    out.write_text("old\n")
    real_open, real_replace = os.open, os.replace

    def locked(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(path) == out and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    def replace(src: Any, dst: Any) -> None:
        if Path(dst) == out:
            raise PermissionError(errno.EACCES, "Access is denied", str(src), None, str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "open", locked)
    monkeypatch.setattr(os, "replace", replace)
    argv = ["export", *RANGE, "--format", "csv", "-o", str(out), "-q"]
    if checkpoint:
        argv += ["--checkpoint", str(tmp_path / "cb.ckpt")]
    assert cli.main(argv) == 3
    assert capsys.readouterr().err == (
        f"error: OSError: --output {out} cannot be replaced (Permission denied): "
        "is it open in another program, or read-only?\n"
    )
    assert emu.requests == []
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cb.csv"]


def test_an_output_that_is_not_a_regular_file_is_refused_before_any_request(
    emu: ConvosoEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A FIFO (or a device) was replaced by a regular file holding the export.
    fifo = tmp_path / "cb.fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link.jsonl"
    link.symlink_to(fifo)
    for out in (fifo, link):
        assert cli.main(["export", *RANGE, "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert err == f"error: ValueError: --output {out} is not a regular file\n"
    assert emu.requests == []
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cb.fifo", "link.jsonl"]


@pytest.mark.usefixtures("fast_client")
def test_an_export_failing_before_its_checkpoint_is_written_leaves_no_partial(
    emu: ConvosoEmulator,
    tmp_path: Path,
    checkpointed_csv: tuple[Path, Path, list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The plan failed (the API down, a wrong token, Ctrl-C while probing): no checkpoint
    # was written, yet an empty .cb.csv.partial stayed beside the output, for nothing.
    argv = checkpointed_csv[2]
    emu.script(["status_503"] * 2)  # the first probe, and its one retry
    assert cli.main(argv) == 1
    assert capsys.readouterr().err.startswith("error: ServerError: ")
    assert list(tmp_path.iterdir()) == []
    # Once the checkpoint holds the plan, the partial output is kept for the rerun.
    emu.script([*[None] * 31, *["status_503"] * 40])  # the probes, then pages fail
    assert cli.main(argv) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cb.csv.partial", "cb.ckpt"]
    emu.clear_script()
    assert cli.main(argv) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["cb.csv"]


def _die_after_the_first_window(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the checkpointed export ``argv`` until its first window is recorded as done,
    then fail (exit 3), leaving the checkpoint and the partial output as a kill would."""
    real_save = _export.write_atomically
    saves: list[str] = []

    def save_then_die(path: Any, text: str) -> None:
        real_save(path, text)
        saves.append(text)
        if len(saves) == 2:  # the plan, then the first window recorded as done
            raise OSError("the process died here")

    monkeypatch.setattr(_export, "write_atomically", save_then_die)
    assert cli.main(argv) == 3
    monkeypatch.setattr(_export, "write_atomically", real_save)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_callback_rescheduled_into_a_later_window_is_not_repeated_by_a_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # The export drops a record it has already handed out when a later window gives it
    # again (a callback rescheduled to a later day meanwhile), but a resumed export knew
    # nothing of the records its completed windows wrote: the callback was in the
    # output twice once the process had been killed between the two windows.
    server = Served(ConvosoEmulator(500, seed=3, auth_token=SECRET))
    try:
        monkeypatch.setenv("CONVOSO_BASE_URL", server.emu.base_url)
        monkeypatch.setenv("CONVOSO_AUTH_TOKEN", SECRET)
        monkeypatch.setattr(proto, "REACHABLE", 100)  # windows of a few days
        out, ckpt = tmp_path / f"cb.{fmt}", tmp_path / "cb.ckpt"
        argv = ["export", *RANGE, "--format", fmt, "-o", str(out), "--checkpoint", str(ckpt)]
        argv += ["--concurrency", "1", "-q"]
        _die_after_the_first_window(argv, monkeypatch)
        saved = json.loads(ckpt.read_text())
        assert saved["done"] == [0]
        last = ExportWindow.from_json(saved["windows"][-1])
        partial = tmp_path / f".cb.{fmt}.partial"
        if fmt == "jsonl":
            moved = lines(partial)[0]["id"]
        else:
            with partial.open(newline="") as handle:
                moved = list(csv.reader(handle))[1][0]
        # Rescheduled to the last window's last day: walked again there on the resume.
        minute = last.end.toordinal() * 24 * 60 + 10 * 60

        async def reschedule() -> bool:
            return server.emu.store.update(moved, minute=minute)

        assert server.call(reschedule())
        assert cli.main(argv) == 0
        if fmt == "jsonl":
            ids = [r["id"] for r in lines(out)]
        else:
            with out.open(newline="") as handle:
                ids = [row[0] for row in list(csv.reader(handle))[1:]]
        stored = set(server.emu.store.ids())
    finally:
        server.close()
    assert ids.count(moved) == 1
    assert len(ids) == len(set(ids)) == len(stored)
    assert set(ids) == stored


@pytest.mark.parametrize(
    ("fmt", "junk"),
    [("jsonl", b'{"no": "id"}\n'), ("jsonl", b'{"id": 1}\n'), ("csv", b"\xff")],
)
def test_a_resume_refuses_a_partial_output_that_is_not_the_records(
    emu: ConvosoEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
    junk: bytes,
) -> None:
    # The resume reads back the ids its partial output holds: bytes that are not the
    # records (overwritten meanwhile) are a usage error, not a KeyError traceback.
    monkeypatch.setattr(proto, "REACHABLE", 800)
    out, ckpt = tmp_path / f"cb.{fmt}", tmp_path / "cb.ckpt"
    argv = ["export", *RANGE, "--format", fmt, "-o", str(out), "--checkpoint", str(ckpt), "-q"]
    _die_after_the_first_window(argv, monkeypatch)
    partial = tmp_path / f".cb.{fmt}.partial"
    size = json.loads(ckpt.read_text())["state"]["output_bytes"]
    partial.write_bytes((junk * size)[:size])
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: ValueError: {partial} does not hold the {fmt} records")
    assert err.rstrip().endswith("remove the checkpoint to start over")
    assert ckpt.exists()
    assert not out.exists()


def test_the_checkpoint_outlives_a_failed_commit_of_the_output(
    emu: ConvosoEmulator,
    checkpointed_csv: tuple[Path, Path, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The export deleted the checkpoint before the CLI renamed its output into place, so
    # a failed rename lost the resume point with every record fetched.
    out, ckpt, argv = checkpointed_csv
    commit = cli._Output.commit

    def blocked(self: cli._Output) -> None:  # a directory appears at -o meanwhile
        out.mkdir()
        commit(self)

    monkeypatch.setattr(cli._Output, "commit", blocked)
    assert cli.main(argv) == 3
    assert capsys.readouterr().err.startswith("error: IsADirectoryError: ")
    saved = json.loads(ckpt.read_text())
    assert len(saved["done"]) == len(saved["windows"]) > 1
    monkeypatch.setattr(cli._Output, "commit", commit)
    out.rmdir()
    emu.reset_stats()
    assert cli.main(argv) == 0
    assert emu.requests == []  # every window was done: nothing fetched again
    with out.open(newline="") as handle:
        ids = [row[0] for row in list(csv.reader(handle))[1:]]
    assert sorted(ids) == sorted(emu.store.ids())
    assert sorted(p.name for p in out.parent.iterdir()) == ["cb.csv"]


@pytest.mark.parametrize(
    ("stage", "recipient"), [("PENDING", "System"), ("pending", "SYSTEM"), ("Pending", "system")]
)
def test_search_prints_a_table(
    emu: ConvosoEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stage: str,
    recipient: str,
) -> None:
    # Any case, as the library takes them: a lowercase stage was a usage error.
    monkeypatch.setenv("COLUMNS", "200")
    argv = ["search", "--stage", stage, "--recipient", recipient, "--limit", "5"]
    assert cli.main([*argv, "--start-date", "2026-03-01", "--end-date", "2026-03-30"]) == 0
    out = capsys.readouterr().out
    matching = [
        r
        for r in emu.store.records()
        if r["stage"] == "PENDING" and r["recipient"].lower() == "system"
    ]
    assert f"5 of {len(matching):,} callbacks" in out
    for column in ("id", "callback_time", "stage", "recipient", "campaign_name"):
        assert column in out
    assert out.count("PENDING") == 5


def test_search_refuses_a_second_stage_rather_than_searching_the_last(
    emu: ConvosoEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["search", "--stage", "PENDING", "--stage", "DISMISSED"]
    assert cli.main(argv) == 2
    assert "--stage may be given once here" in capsys.readouterr().err
    assert emu.requests == []


def test_search_and_export_show_server_and_user_strings_literally(
    emu: ConvosoEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Square brackets are rich markup: [/x] crashed the table, [sales-team] vanished.
    store = emu.store
    monkeypatch.setattr(
        store, "users", tuple(replace(u, name="Jane [/x] Smith") for u in store.users)
    )
    campaigns = tuple(replace(c, name="Sales [sales-team] Campaign") for c in store.campaigns)
    monkeypatch.setattr(store, "campaigns", campaigns)
    monkeypatch.setenv("COLUMNS", "300")
    assert cli.main(["search", "--limit", "40"]) == 0
    out = capsys.readouterr().out
    assert "Jane [/x] Smith" in out
    assert "Sales [sales-team] Campaign" in out
    target = tmp_path / "calls[red].jsonl"
    assert cli.main(["export", *RANGE, "-o", str(target)]) == 0
    assert f"callbacks to {target} in " in capsys.readouterr().err
    assert target.exists()


def test_search_to_a_redirected_stdout_on_windows_survives_names_beyond_its_code_page(
    emu: ConvosoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On Windows, before Python's UTF-8 mode, stdout redirected to a file or a pipe is in
    # the ANSI code page (cp1252) with strict errors: a name outside it (Nguyen with its
    # Vietnamese accents, any Cyrillic or CJK name) ended `search > out.txt` with
    # "error: UnicodeEncodeError" and exit 2, a usage error, after the search succeeded.
    store = emu.store
    monkeypatch.setattr(store, "users", tuple(replace(u, name="Nguyễn Văn") for u in store.users))
    monkeypatch.setenv("COLUMNS", "300")
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="cp1252", errors="strict")
    monkeypatch.setattr(sys, "stdout", stdout)
    assert cli.main(["search", "--limit", "40"]) == 0
    stdout.flush()
    printed = raw.getvalue().decode("cp1252")
    assert "Nguy\\u1ec5n V\\u0103n" in printed  # as Python writes it to stderr
    assert stdout.errors == "strict"  # the caller's stream is left as it was


def test_demo_exports_and_matches_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo.jsonl"
    assert cli.main(["demo", "--records", "3000", "--days", "5", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "records exported" in printed
    assert printed.count("3,000") == 2  # exported and in the emulator
    assert len(out.read_text().splitlines()) == 3000
    assert cli.main(["demo", "--records", "-1"]) == 2


def test_demo_quiet_prints_no_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # -q ("no progress bar or summary") still printed the summary table.
    out = tmp_path / "demo.jsonl"
    assert cli.main(["demo", "--records", "300", "--days", "2", "-o", str(out), "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    assert len(out.read_text().splitlines()) == 300


def test_demo_to_stdout_keeps_its_summary_out_of_the_records(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `demo -o -` printed its summary table on stdout after the JSONL records, so the
    # stream a pipe read was no longer JSONL.
    assert cli.main(["demo", "--records", "300", "--days", "2", "-o", "-"]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert len(records) == len({r["id"] for r in records}) == 300
    assert "records exported" in captured.err


def test_demo_over_one_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A crowded day over a one-day range left nowhere for the other records (ValueError).
    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo", "--records", "300", "--days", "1", "-o", "one[bold]day.jsonl"]) == 0
    captured = capsys.readouterr()
    assert "building 300 synthetic callbacks over 1 day ..." in captured.err
    assert "exported to" in captured.out
    assert "one[bold]day.jsonl" in captured.out  # the name, not markup
    records = lines(tmp_path / "one[bold]day.jsonl")
    assert len(records) == 300
    assert {r["callback_time"][:10] for r in records} == {"2026-03-01"}


def test_demo_count_mismatch_exits_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = cli._run_export

    async def short(*args: Any, **kwargs: Any) -> Any:
        written, exports = await real(*args, **kwargs)
        return written - 1, exports

    monkeypatch.setattr(cli, "_run_export", short)
    argv = ["demo", "--records", "500", "--days", "2", "-o", str(tmp_path / "d.jsonl"), "-q"]
    assert cli.main(argv) == 4
    assert "exported 499 records but the emulator holds 500" in capsys.readouterr().err


def test_progress_bar_when_stderr_is_a_terminal(
    emu: ConvosoEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli, "Console", functools.partial(Console, force_terminal=True))
    assert cli.main(["export", *RANGE, "-o", str(tmp_path / "cb.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "rec/s" in err
    assert "ETA" in err
    assert "4,000/4,000" in err


def test_keyboard_interrupt_exits_130(
    emu: ConvosoEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def interrupted(*args: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_search_command", interrupted)
    assert cli.main(["search"]) == 130
    assert capsys.readouterr().err == "error: KeyboardInterrupt: interrupted\n"


#: The CLI in a child process, with the planner's cap at 800: RANGE's 4,000 records make
#: 1 + 30 probes, then six windows of one page each. Ctrl-C is Python's own even if this
#: run ignores SIGINT (a background job of a shell script), as the child would inherit.
_CAPPED_CLI = (
    "import signal, sys; from convoso_async import _protocol, cli; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "_protocol.REACHABLE = 800; sys.exit(cli.main(sys.argv[1:]))"
)


def _signalled_mid_export(
    emu: ConvosoEmulator, argv: list[str], signum: int = signal.SIGTERM
) -> tuple[int, str]:
    """Run ``export argv`` in a child, one window at a time; send it ``signum`` while the
    second window's page hangs (the first window written, and checkpointed if asked)."""
    emu.script([*[None] * 32, "hang"])  # 31 probes and the first window's page answered
    child = [sys.executable, "-c", _CAPPED_CLI, "export", *RANGE, *argv]
    child += ["--concurrency", "1", "--verbose"]
    with subprocess.Popen(child, stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None
        posts = 0
        while posts < 33:  # the verbose log names each request as it is sent
            line = process.stderr.readline()
            assert line, "the export ended before its second window's page"
            posts += "POST callbacks/search" in line
        process.send_signal(signum)
        err = process.stderr.read()
        return process.wait(timeout=60), err


@contextlib.contextmanager
def _child_hung_mid_export(
    emu: ConvosoEmulator, argv: list[str]
) -> Iterator[subprocess.Popen[str]]:
    """``export argv`` in a child, hung on its second window's page (the first window
    written); killed (SIGKILL) on the way out if still running."""
    emu.script([*[None] * 32, "hang"])  # 31 probes and the first window's page answered
    child = [sys.executable, "-c", _CAPPED_CLI, "export", *RANGE, *argv]
    child += ["--concurrency", "1", "--verbose"]
    with subprocess.Popen(child, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stderr is not None
            posts = 0
            while posts < 33:  # the verbose log names each request as it is sent
                line = process.stderr.readline()
                assert line, "the export ended before its second window's page"
                posts += "POST callbacks/search" in line
            # Sent is not received: the hang must be the child's, not the next client's.
            deadline = time.monotonic() + 30
            while emu.scripted_pending:
                assert time.monotonic() < deadline, "the child's page never arrived"
                time.sleep(0.001)
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=60)


def _temporaries(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.name.endswith(".tmp")}


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="flock: POSIX only")
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_killed_exports_temporary_output_is_removed_by_the_next_not_a_live_ones(
    emu: ConvosoEmulator, tmp_path: Path, fmt: str
) -> None:
    # SIGKILL (the OOM killer, kill -9, a container stopped) left .cb.out.1a2b3c4d.tmp
    # beside the output, as big as the records fetched, and no rerun ever removed it.
    out = tmp_path / "cb.out"
    argv = ["--format", fmt, "-o", str(out)]
    with _child_hung_mid_export(emu, argv) as killed:
        killed.kill()
    assert killed.returncode == -signal.SIGKILL
    (stale,) = _temporaries(tmp_path)
    if fmt == "jsonl":  # Parquet holds its rows in memory until a row group is full
        assert (tmp_path / stale).stat().st_size > 0
    # Of no concern to it: another output's temporary, a checkpoint's partial output.
    (tmp_path / ".other.out.0badf00d.tmp").write_bytes(b"x")
    (tmp_path / ".cb.out.partial").write_bytes(b"x")
    with _child_hung_mid_export(emu, argv) as running:
        (live,) = _temporaries(tmp_path) - {stale, ".other.out.0badf00d.tmp"}
        size = (tmp_path / live).stat().st_size
        emu.clear_script()
        assert cli.main(["export", *RANGE, "--format", fmt, "-o", str(out), "-q"]) == 0
        assert running.poll() is None
        assert _temporaries(tmp_path) == {live, ".other.out.0badf00d.tmp"}
        assert (tmp_path / live).stat().st_size == size
    assert (tmp_path / ".cb.out.partial").exists()
    # Once its export is dead (killed on leaving the block), the next export removes it.
    assert cli.main(["export", *RANGE, "--format", fmt, "-o", str(out), "-q"]) == 0
    assert _temporaries(tmp_path) == {".other.out.0badf00d.tmp"}
    assert _record_count(out, fmt) == len(emu.store)


def _a_rival_before_the_first_lock(
    monkeypatch: pytest.MonkeyPatch, rival: Callable[[Path], None]
) -> None:
    """Run ``rival(path)`` once, between a new temporary's open and its lock: the moment
    another export starting then would act on it."""
    lock = cli._lock
    raced: list[Path] = []

    def lock_after_a_rival(fd: int, path: Path) -> bool | None:
        if not raced:
            raced.append(path)
            rival(path)
        return lock(fd, path)

    monkeypatch.setattr(cli, "_lock", lock_after_a_rival)


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="flock: POSIX only")
def test_a_temporary_taken_for_a_killed_exports_while_being_created_is_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another export starting between this one's open and its lock finds the new file
    # unlocked and removes it: this one must not write into the removed file.
    target = tmp_path / "cb.jsonl"
    removed: list[str] = []

    def remove_it(path: Path) -> None:
        removed.extend(_temporaries(tmp_path))
        cli._remove_stale_temporaries(target)  # its own open file: a rival's lock
        assert _temporaries(tmp_path) == set()

    _a_rival_before_the_first_lock(monkeypatch, remove_it)
    path, handle, locked = cli._create_beside(target)
    with handle:
        assert locked
        assert len(removed) == 1
        assert _temporaries(tmp_path) == {path.name} != set(removed)
        cli._remove_stale_temporaries(target)  # held: left alone
        assert path.exists()


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="flock: POSIX only")
def test_a_temporary_a_rival_locks_before_this_export_does_is_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A rival starting between this export's open and its lock may hold the new file's
    # lock (about to remove it as a killed export's): this one must take a new name, not
    # go on unlocked in a file about to vanish.
    import fcntl

    held: list[tuple[int, Path]] = []

    def lock_it(path: Path) -> None:
        rival = os.open(path, os.O_RDONLY)
        held.append((rival, path))
        fcntl.flock(rival, fcntl.LOCK_EX | fcntl.LOCK_NB)

    _a_rival_before_the_first_lock(monkeypatch, lock_it)
    try:
        path, handle, locked = cli._create_beside(tmp_path / "cb.jsonl")
        handle.close()
        assert locked is True
        assert path != held[0][1]
    finally:
        os.close(held[0][0])


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="flock: POSIX only")
def test_a_complete_temporary_stays_locked_until_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Closed (so unlocked) before its rename, a complete output could be taken for a
    # killed export's by one starting just then, and removed: the rename would fail.
    target = tmp_path / "cb.jsonl"
    replace = os.replace

    def rival_then_replace(source: Any, destination: Any) -> None:
        cli._remove_stale_temporaries(target)
        replace(source, destination)

    out = cli._Output(str(target), checkpoint=None)
    out.open(None).write(b"{}\n")
    monkeypatch.setattr(os, "replace", rival_then_replace)
    out.commit()
    assert target.read_bytes() == b"{}\n"
    assert _temporaries(tmp_path) == set()


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="flock: POSIX only")
def test_temporaries_are_kept_where_they_cannot_be_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without flock (ENOLCK: some network file systems) a live export's file looks like
    # a dead one's: nothing is removed, and the export goes on unlocked.
    stale = tmp_path / ".cb.jsonl.0123abcd.tmp"
    stale.write_bytes(b"{}\n")
    os.mkfifo(tmp_path / ".cb.jsonl.fifo0000.tmp")  # not a temporary's name (not hex)
    os.mkfifo(tmp_path / ".cb.jsonl.0000f1f0.tmp")  # a FIFO by one: neither waited on
    (tmp_path / ".cb.jsonl.11111111.tmp").symlink_to(stale)  # nor followed
    (tmp_path / ".cb.jsonl.backup01.tmp").write_bytes(b"{}\n")  # a user's: not hex
    before = _temporaries(tmp_path)

    def no_flock(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    cli._remove_stale_temporaries(tmp_path / "cb.jsonl")  # with flock: FIFO, link stay
    assert _temporaries(tmp_path) == before - {stale.name}
    stale.write_bytes(b"{}\n")
    monkeypatch.setattr(cli.fcntl, "flock", no_flock)
    out = cli._Output(str(tmp_path / "cb.jsonl"), checkpoint=None)
    out.open(None).write(b"{}\n")
    assert out.partial is not None
    assert _temporaries(tmp_path) == before | {out.partial.name}
    out.commit()
    assert (tmp_path / "cb.jsonl").read_bytes() == b"{}\n"
    assert _temporaries(tmp_path) == before


def _record_count(path: Path, fmt: str) -> int:
    if fmt == "parquet":
        return int(pq.read_metadata(path).num_rows)
    return len(path.read_bytes().splitlines())


@pytest.mark.parametrize(
    ("signum", "fmt", "code", "last_line"),
    [
        (signal.SIGTERM, "jsonl", 143, "error: SIGTERM: terminated"),
        (signal.SIGTERM, "parquet", 143, "error: SIGTERM: terminated"),
        (signal.SIGINT, "jsonl", 130, "error: KeyboardInterrupt: interrupted"),
        # A terminal closed under an export run without nohup: killed on the spot too.
        pytest.param(
            getattr(signal, "SIGHUP", None),
            "jsonl",
            129,
            "error: SIGHUP: hangup",
            marks=pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP"),
        ),
    ],
    ids=["sigterm-jsonl", "sigterm-parquet", "sigint-jsonl", "sighup-jsonl"],
)
def test_a_signal_mid_export_exits_with_one_line_and_leaves_no_temporary_file(
    emu: ConvosoEmulator, tmp_path: Path, signum: int, fmt: str, code: int, last_line: str
) -> None:
    # SIGTERM (systemctl stop, timeout) killed the process on the spot: no message, and
    # the temporary output (.cb.out.1a2b3c4d.tmp) left behind, one more every run.
    argv = ["--format", fmt, "-o", str(tmp_path / "cb.out")]
    assert list(tmp_path.iterdir()) == []
    returned, err = _signalled_mid_export(emu, argv, signum)
    assert (returned, err.splitlines()[-1]) == (code, last_line)
    for noise in ("Traceback", "Task was destroyed", "Unclosed", "Exception ignored", SECRET):
        assert noise not in err
    assert list(tmp_path.iterdir()) == []


def test_sigterm_mid_checkpointed_export_resumes_to_exactly_the_store(
    emu: ConvosoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, ckpt = tmp_path / "cb.jsonl", tmp_path / "cb.ckpt"
    argv = ["-o", str(out), "--checkpoint", str(ckpt)]
    code, err = _signalled_mid_export(emu, argv)
    assert (code, err.splitlines()[-1]) == (143, "error: SIGTERM: terminated")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cb.jsonl.partial", "cb.ckpt"]
    assert json.loads(ckpt.read_text())["done"] == [0]
    emu.clear_script()
    monkeypatch.setattr(proto, "REACHABLE", 800)
    assert cli.main(["export", *RANGE, *argv, "-q"]) == 0
    ids = [record["id"] for record in lines(out)]
    assert len(ids) == len(set(ids)) == len(emu.store)
    assert set(ids) == set(emu.store.ids())
    assert [p.name for p in tmp_path.iterdir()] == ["cb.jsonl"]


def test_sigterm_handling_is_only_for_the_command(
    emu: ConvosoEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    # The handlers are the command's: whatever was there before is back once it returns.
    names = ("SIGTERM", "SIGHUP")
    signums = [getattr(signal, name) for name in names if hasattr(signal, name)]
    before = [signal.getsignal(signum) for signum in signums]
    assert cli.main(["search", "--limit", "1"]) == 0
    assert [signal.getsignal(signum) for signum in signums] == before
    # Off the main thread, where no handler can be set, the command runs all the same.
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(cli.main(["search", "--limit", "1"])))
    thread.start()
    thread.join()
    assert codes == [0]
    assert "error" not in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP")
def test_a_sighup_ignored_as_nohup_ignores_it_stays_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Run under nohup, closing the terminal must not end the command.
    seen: list[object] = []

    async def command(*args: Any) -> int:
        seen.append(signal.getsignal(signal.SIGHUP))
        return 0

    monkeypatch.setattr(cli, "_search_command", command)
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert cli.main(["search"]) == 0
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)
    assert seen == [signal.SIG_IGN]


def test_emulator_command_delegates(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["emulator", "--help"]) == 0
    assert "Serve a local Convoso Callbacks API" in capsys.readouterr().out
    assert cli.main(["emulator", "--port", "99999"]) == 2  # bind() raised OverflowError
    assert "port must be 0-65535: 99999" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    assert "export" in capsys.readouterr().out


def test_python_dash_m_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "convoso_async", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    for command in ("export", "search", "emulator", "demo"):
        assert command in done.stdout


def test_every_option_of_every_command_says_what_it_does() -> None:
    # demo's four options had no help text, so --help listed them bare.
    parser = cli.build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    bare = [
        f"{name} {action.option_strings}"
        for name, sub in commands.choices.items()
        for action in sub._actions
        if action.option_strings and not action.help
    ]
    assert bare == []


def test_module_entry_point_is_the_cli() -> None:
    import convoso_async.__main__ as entry

    assert entry.main is cli.main


# --- found by mutating cli.py: behaviour no test above pinned ---------------------------


def test_export_takes_the_missed_stage_in_any_case(
    emu: ConvosoEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    # MISSED is no library Stage: "--stage missed" reaches argparse's choices in
    # capitals only because _stage_arg capitalises what Stage() does not read.
    assert cli.main(["export", *RANGE, "--stage", "missed", "-o", "-", "-q"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = {i for i in emu.store.ids() if emu.store.get(i)["stage"] == "MISSED"}  # type: ignore[index]
    assert expected
    assert {r["id"] for r in records} == expected


def test_a_token_from_the_environment_is_stripped_and_a_blank_one_refused(
    emu: ConvosoEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "CONVOSO_AUTH_TOKEN", f"  {SECRET}\n"
    )  # pasted with spaces, or read with its newline
    assert cli.main(["search", "--limit", "1"]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("CONVOSO_AUTH_TOKEN", " \n")
    assert cli.main(["search", "--limit", "1"]) == 2  # no token: a usage error, not exit 1
    assert "no auth token" in capsys.readouterr().err
    assert len(emu.requests) == 1


def test_each_filter_option_is_sent_as_its_own_field(
    emu: ConvosoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    clients: list[ConvosoClient] = []

    def client(*args: Any, **kwargs: Any) -> ConvosoClient:
        clients.append(ConvosoClient(*args, **kwargs))
        return clients[-1]

    monkeypatch.setattr(cli, "ConvosoClient", client)
    argv = ["search", "--campaign-id", "11", "--list-id", "22", "--user-id", "33"]
    assert cli.main([*argv, "--lead-id", "44", "--max-concurrency", "3"]) == 0
    (request,) = emu.requests
    fields = {k: request.form.get(k) for k in ("campaign_id", "list_id", "user_id", "lead_id")}
    assert fields == {"campaign_id": "11", "list_id": "22", "user_id": "33", "lead_id": "44"}
    assert [c.max_concurrency for c in clients] == [3]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_resume_drops_what_a_killed_export_wrote_past_its_checkpoint(
    emu: ConvosoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # Killed mid-window, the partial output holds records (or half of one) beyond the
    # size the checkpoint vouches for: the resume writes those windows again after them.
    whole, out, ckpt, argv = _whole_then_checkpointed(tmp_path, monkeypatch, fmt)
    _die_after_the_first_window(argv, monkeypatch)
    partial = tmp_path / f".cb.{fmt}.partial"
    vouched = json.loads(ckpt.read_text())["state"]["output_bytes"]
    assert partial.stat().st_size == vouched
    with partial.open("ab") as handle:
        handle.write(whole.read_bytes()[vouched : vouched + 1000])  # the next window, cut
    assert cli.main(argv) == 0
    assert out.read_bytes() == whole.read_bytes()


def test_a_checkpoint_with_several_stages_is_refused_before_any_request(
    emu: ConvosoEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", *RANGE, "-o", str(tmp_path / "cb.jsonl")]
    argv += ["--checkpoint", str(tmp_path / "cb.ckpt"), "--stage", "PENDING", "--stage", "MISSED"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == "error: ValueError: --checkpoint works with at most one --stage\n"
    # Nor can stdout be resumed: it cannot be truncated to what the checkpoint vouches for.
    argv = ["export", *RANGE, "-o", "-", "--checkpoint", str(tmp_path / "cb.ckpt")]
    assert cli.main(argv) == 2
    assert "--checkpoint needs --format jsonl or csv and an --output file" in (
        capsys.readouterr().err
    )
    assert emu.requests == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("fast_client")
def test_a_csv_resume_reads_back_a_field_beyond_csvs_default_limit(
    emu: ConvosoEmulator,
    checkpointed_csv: tuple[Path, Path, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A name longer than csv's 128 KiB field limit was written, but reading the partial
    # output back on the resume failed on it ("field larger than field limit").
    store = emu.store
    long_name = "x" * (csv.field_size_limit() + 1)
    # One agent's: every record holding it would make pages beyond the client's limit.
    monkeypatch.setattr(store, "users", (replace(store.users[0], name=long_name), *store.users[1:]))
    out, ckpt, argv = checkpointed_csv
    argv += ["--concurrency", "1"]
    emu.script([*[None] * 36, *["status_503"] * 40])
    assert cli.main(argv) == 1
    vouched = json.loads(ckpt.read_text())["state"]["output_bytes"]
    partial = out.parent / ".cb.csv.partial"
    assert long_name.encode() in partial.read_bytes()[:vouched]  # read back on the resume
    capsys.readouterr()
    emu.clear_script()
    limit = csv.field_size_limit()
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert csv.field_size_limit() == limit  # the process-wide limit is put back
    csv.field_size_limit(len(long_name))
    try:
        with out.open(newline="") as handle:
            ids = [row[0] for row in list(csv.reader(handle))[1:]]
    finally:
        csv.field_size_limit(limit)
    assert sorted(ids) == sorted(emu.store.ids())


def test_the_closing_line_counts_the_records_of_several_stages_and_names_stdout(
    emu: ConvosoEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stages = ["--stage", "PENDING", "--stage", "MISSED"]
    out = tmp_path / "cb.jsonl"
    assert cli.main(["export", *RANGE, *stages, "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"exported {len(lines(out)):,} callbacks to {out} in ")
    assert cli.main(["export", *RANGE, *stages, "-o", "-"]) == 0
    captured = capsys.readouterr()
    count = len(captured.out.splitlines())
    assert captured.err.startswith(f"exported {count:,} callbacks to stdout in ")


def test_demo_of_no_records_and_of_no_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo.jsonl"
    assert cli.main(["demo", "--records", "0", "--days", "2", "-o", str(out), "-q"]) == 0
    assert out.read_bytes() == b""
    assert cli.main(["demo", "--days", "0", "-o", str(out), "-q"]) == 2
    assert capsys.readouterr().err == (
        "error: ValueError: --records must be >= 0 and --days >= 1\n"
    )


def test_quiet_draws_no_progress_bar_on_a_terminal(
    emu: ConvosoEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli, "Console", functools.partial(Console, force_terminal=True))
    assert cli.main(["export", *RANGE, "-o", str(tmp_path / "cb.jsonl"), "-q"]) == 0
    assert capsys.readouterr() == ("", "")


def test_parquet_without_pyarrow_is_a_usage_error(
    emu: ConvosoEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    argv = ["export", *RANGE, "--format", "parquet", "-o", str(tmp_path / "cb.parquet")]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == (
        "error: ImportError: Parquet output needs pyarrow: pip install 'convoso-async[parquet]'\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(sys.platform == "win32", reason="no line break in a Windows file name")
def test_an_error_naming_a_path_with_a_line_break_stays_one_line(
    emu: ConvosoEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("CONVOSO_AUTH_TOKEN")
    token_file = tmp_path / "to\nken"
    token_file.write_text("\n")
    assert cli.main(["search", "--auth-token-file", str(token_file)]) == 2
    err = capsys.readouterr().err
    shown = str(token_file).replace("\n", " ")  # the error's one line, and the file's name
    assert err == f"error: ValueError: --auth-token-file {shown} is empty\n"


def test_a_signal_handler_set_before_the_command_is_put_back(
    emu: ConvosoEmulator,
) -> None:
    def handler(signum: int, frame: object) -> None:  # pragma: no cover - never sent
        pass

    before = signal.signal(signal.SIGTERM, handler)
    try:
        assert cli.main(["search", "--limit", "1"]) == 0
        assert signal.getsignal(signal.SIGTERM) is handler
    finally:
        signal.signal(signal.SIGTERM, before)


def test_verbose_logging_ends_with_the_command(
    emu: ConvosoEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = logging.getLogger("convoso_async")
    handlers = list(logger.handlers)
    assert cli.main(["search", "--limit", "1", "--verbose"]) == 0
    assert "DEBUG convoso_async: POST callbacks/search" in capsys.readouterr().err
    assert logger.handlers == handlers
    assert logger.level == logging.NOTSET
    assert cli.main(["search", "--limit", "1"]) == 0
    assert "DEBUG" not in capsys.readouterr().err


def test_a_checkpoint_of_an_export_whose_done_windows_hold_no_records_resumes(
    emu: ConvosoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Killed once its only window (matching nothing) was done: the checkpoint vouches for
    # 0 bytes of output, which is all of it, not a checkpoint without output state.
    out, ckpt = tmp_path / "cb.jsonl", tmp_path / "cb.ckpt"
    argv = ["export", *RANGE, "--lead-id", "999999999", "-o", str(out)]
    argv += ["--checkpoint", str(ckpt), "-q"]
    _die_after_the_first_window(argv, monkeypatch)
    saved = json.loads(ckpt.read_text())
    assert (saved["done"], saved["state"]["output_bytes"]) == ([0], 0)
    assert cli.main(argv) == 0
    assert out.read_bytes() == b""
    assert not ckpt.exists()


def test_a_stage_given_twice_is_fetched_once(emu: ConvosoEmulator) -> None:
    # Written once either way (the stages' shared de-duplication), but walked twice.
    argv = ["export", *RANGE, "-o", "-", "-q", "--stage", "PENDING"]
    assert cli.main(argv) == 0
    once = len(emu.requests)
    emu.reset_stats()
    assert cli.main([*argv, "--stage", "pending"]) == 0
    assert len(emu.requests) == once

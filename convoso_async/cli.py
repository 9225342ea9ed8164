"""The ``convoso-async`` command line: ``export``, ``search``, ``emulator`` and ``demo``.

Exit codes: 0 success; 1 the API or the client failed (a :class:`ConvosoError`); 2 bad
arguments (argparse, or a ``ValueError`` from validation); 3 the output path could not
be written (``OSError``), or the emulator could not bind its address; 4 the demo's
export did not match the emulator's store; 130 interrupted (Ctrl-C); 141, silently, stdout
was closed before the output ended (``| head``), as SIGPIPE would end it; 143 terminated
(SIGTERM: ``systemctl stop``, ``timeout``) and 129 hung up (SIGHUP: the terminal closed),
after the same clean-up as Ctrl-C. Failures
print one line, ``error: <Type>: <message>``, never a traceback (``--verbose`` adds debug
logging, never the token).

The token comes from ``$CONVOSO_AUTH_TOKEN`` or ``--auth-token-file``; there is no
``--auth-token`` option, which would show in ``ps``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import errno
import io
import logging
import os
import re
import secrets
import signal
import stat
import sys
import time
from collections.abc import Coroutine, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ._client import ConvosoClient
from ._errors import ConvosoError
from ._export import CallbackExport, ExportProgress, ExportWindow, SeenIds
from ._models import Recipient, Stage
from ._writers import FORMATS, Writer, durable, open_writer

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: temporary outputs are not locked
    fcntl = None  # type: ignore[assignment]

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_OUTPUT, EXIT_MISMATCH, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a process the signal ended
EXIT_TERMINATED = 143  # 128 + SIGTERM, likewise
EXIT_HANGUP = 129  # 128 + SIGHUP, likewise

logger = logging.getLogger("convoso_async")


# --- arguments ------------------------------------------------------------------------


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def _connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--base-url", help="API root (default: $CONVOSO_BASE_URL, else the Convoso API)"
    )
    group.add_argument(
        "--auth-token-file",
        type=Path,
        help="file holding the auth token (default: $CONVOSO_AUTH_TOKEN)",
    )
    group.add_argument(
        "--max-concurrency", type=int, default=8, help="requests in flight (default: 8)"
    )


def _filter_options(parser: argparse.ArgumentParser, *, many_stages: bool) -> None:
    group = parser.add_argument_group("filters")
    group.add_argument("--campaign-id", help="only this campaign's callbacks")
    group.add_argument("--list-id", help="only this list's callbacks")
    group.add_argument("--user-id", help="only this agent's callbacks")
    group.add_argument("--lead-id", help="only this lead's callbacks")
    # Any case, as the library takes them: --stage pending, --recipient system.
    group.add_argument(
        "--recipient",
        type=str.capitalize,
        choices=[r.filter_value for r in Recipient],
        help="system (auto-dialled) or personal (an agent's reminder), any case",
    )
    stages = [s.value for s in Stage] + ["MISSED"]
    if many_stages:
        group.add_argument(
            "--stage",
            action="append",
            type=_stage_arg,
            choices=stages,
            help="any case; repeat for several (each exported once, one after the other)",
        )
    else:
        # Repeated, argparse would keep the last without a word: refused in _Once.
        group.add_argument(
            "--stage", type=_stage_arg, choices=stages, action=_Once, help="any case; once"
        )


class _Once(argparse.Action):
    """An option that may be given once: a second one is a usage error, not a silent
    override (``search --stage PENDING --stage DISMISSED`` searched DISMISSED alone)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if getattr(namespace, self.dest) is not None:
            parser.error(f"{option_string} may be given once here")
        setattr(namespace, self.dest, values)


def _stage_arg(value: str) -> str:
    """A stage as the library reads it (any case, ``PASTDUE`` for ``PAST_DUE``); any
    other text as typed in capitals, for argparse's choices to refuse or take."""
    try:
        return Stage(value).value
    except ValueError:
        return value.upper()


def _output_options(
    parser: argparse.ArgumentParser, quiet_help: str = "no progress bar or summary"
) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convoso-async",
        description="Export and search Convoso callbacks (asyncio client).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = commands.add_parser(
        "export", help="every callback between two dates, past the 55,000 cap, to a file"
    )
    export.add_argument("--start-date", type=_date, required=True, help="YYYY-MM-DD, inclusive")
    export.add_argument("--end-date", type=_date, required=True, help="YYYY-MM-DD, inclusive")
    _filter_options(export, many_stages=True)
    export.add_argument("--format", choices=FORMATS, default="jsonl", help="default: jsonl")
    export.add_argument(
        "--output", "-o", required=True, help="file to write, or - for stdout (jsonl/csv)"
    )
    export.add_argument(
        "--checkpoint",
        type=Path,
        help="resume file: a rerun after a crash skips completed windows (jsonl/csv)",
    )
    export.add_argument("--concurrency", type=int, help="windows walked at once")
    export.add_argument(
        "--page-size", type=int, default=5000, help="records per request (default: 5000)"
    )
    _connection_options(export)
    _output_options(export)

    search = commands.add_parser("search", help="a table of one filtered search")
    search.add_argument("--start-date", type=_date, help="YYYY-MM-DD, inclusive")
    search.add_argument("--end-date", type=_date, help="YYYY-MM-DD, inclusive")
    _filter_options(search, many_stages=False)
    search.add_argument("--limit", type=int, default=20, help="rows (default: 20, max 5000)")
    _connection_options(search)
    # -q is accepted like the other commands', but search draws no bar and no summary.
    _output_options(search, quiet_help="no effect: search prints only its table")

    commands.add_parser(
        "emulator", help="serve a local emulator (see: convoso-async emulator --help)"
    )

    demo = commands.add_parser(
        "demo", help="export a synthetic store well past the cap from an in-process emulator"
    )
    demo.add_argument(
        "--records", type=int, default=120_000, help="synthetic callbacks (default: 120000)"
    )
    demo.add_argument(
        "--days", type=int, default=30, help="days they spread over from 2026-03-01 (default: 30)"
    )
    demo.add_argument(
        "--output",
        "-o",
        default="callbacks.jsonl",
        help="JSONL file (default: callbacks.jsonl), or -",
    )
    demo.add_argument("--seed", type=int, default=1, help="seed of the synthetic data")
    _output_options(demo)
    return parser


# --- progress -------------------------------------------------------------------------


class _CountColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        total = f"{task.total:,.0f}" if task.total is not None else "?"
        return Text(f"{task.completed:,.0f}/{total}", style="progress.download")


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rec/s" if speed else "- rec/s", style="progress.data.speed")


class _Bar:
    """A rich progress bar on stderr, or nothing (quiet, or stderr not a terminal)."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self._progress: Progress | None = None
        self._task: Any = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                _CountColumn(),
                _RateColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )

    def __enter__(self) -> _Bar:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task("export", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, p: ExportProgress) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task,
                completed=p.records_done,
                total=p.records_expected or None,
                description=f"export {p.windows_done}/{p.windows_total} windows",
            )


# --- shared ---------------------------------------------------------------------------


def _token(args: argparse.Namespace) -> str:
    path: Path | None = getattr(args, "auth_token_file", None)
    if path is not None:
        token = _read_token_file(path)
        if not token:
            raise ValueError(f"--auth-token-file {path} is empty")
        return token
    token = os.environ.get("CONVOSO_AUTH_TOKEN", "").strip()
    if not token:
        raise ValueError("no auth token: set CONVOSO_AUTH_TOKEN or pass --auth-token-file")
    return token


def _read_token_file(path: Path) -> str:
    try:
        # utf-8-sig: a BOM (Notepad, PowerShell's Set-Content) is no part of the token.
        return path.read_text(encoding="utf-8-sig").strip()
    except UnicodeDecodeError as exc:
        # An unreadable token file (exit 3), not a bad argument: UnicodeDecodeError is a
        # ValueError. Its message would quote a byte of the token, so name the position.
        raise OSError(f"--auth-token-file {path} is not UTF-8 text (byte {exc.start})") from None


def _client(args: argparse.Namespace) -> ConvosoClient:
    return ConvosoClient(_token(args), base_url=args.base_url, max_concurrency=args.max_concurrency)


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "campaign_id": args.campaign_id,
        "list_id": args.list_id,
        "user_id": args.user_id,
        "lead_id": args.lead_id,
        "recipient": args.recipient,
    }


class _Output:
    """Where an export goes: a temporary file beside the target, renamed on success.

    With a checkpoint the temporary file has a stable name (``.NAME.partial``) so a rerun
    finds it; it is truncated to the size the checkpoint vouches for and appended to, and
    the checkpoint is removed only once the rename succeeds. Without one it is a fresh
    file with a random name, removed if the export fails. Either way the target name only
    ever holds a complete export, with the mode a plain ``open()`` would give it (0666
    less the umask).
    """

    def __init__(self, target: str, *, checkpoint: Path | None) -> None:
        self.stdout = target == "-"
        self.target = Path(target) if self.stdout else _output_target(target)
        self.handle: IO[bytes] | None = None
        self.partial: Path | None = None
        self._checkpoint = checkpoint
        self._locked = False  # the temporary file's flock, released when it is closed

    def open(self, resume_bytes: int | None) -> IO[bytes]:
        if self.stdout:
            if sys.stdout is None:  # started with it closed (`>&-`)
                raise OSError("--output -: stdout is closed")
            self.handle = sys.stdout.buffer
            return self.handle
        directory = self.target.parent
        _remove_stale_temporaries(self.target)
        if self._checkpoint is not None:
            self.partial = directory / f".{self.target.name}.partial"
            if resume_bytes is not None:
                if not self.partial.exists() or self.partial.stat().st_size < resume_bytes:
                    raise ValueError(
                        f"the checkpoint vouches for {resume_bytes} bytes of {self.partial}, "
                        "which is missing or shorter: remove the checkpoint to start over"
                    )
                self.handle = self.partial.open("r+b")
                self.handle.truncate(resume_bytes)
                self.handle.seek(resume_bytes)
                return self.handle
            self.handle = self.partial.open("wb")
            return self.handle
        self.partial, self.handle, self._locked = _create_beside(self.target)
        return self.handle

    def commit(self) -> None:
        assert self.handle is not None
        if self.stdout:
            self.handle.flush()
            return
        # On disk before the rename, and the rename after it: a power cut must leave the
        # old file or the whole new one under the target name, never a truncated one.
        durable(self.handle)
        assert self.partial is not None
        if self._locked:
            # Renamed while still open (POSIX allows it) and so still locked: closed
            # first, another export could take the file for a killed one's and remove it.
            os.replace(self.partial, self.target)
            self.handle.close()
        else:
            self.handle.close()
            os.replace(self.partial, self.target)
        _sync_directory(self.target.parent)
        if self._checkpoint is not None:
            # Complete and in place: a rerun with this path starts a new export.
            self._checkpoint.unlink(missing_ok=True)

    def abandon(self) -> None:
        if self.stdout or self.partial is None:
            return
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self.handle.close()
        # A checkpointed partial is kept for the rerun, unless the export failed before
        # writing its checkpoint (while planning): then no rerun resumes from it.
        if self._checkpoint is None or not self._checkpoint.exists():
            with contextlib.suppress(OSError):
                self.partial.unlink()


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable, where the system can (POSIX; not all
    file systems let a directory be opened or synced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # the rename is done; only its durability across a power cut is unsure
    finally:
        os.close(fd)


def _checkpoint_place(checkpoint: Path) -> None:
    """Refuse, before any request, a ``--checkpoint`` that could never be written."""
    if checkpoint.is_dir():
        raise ValueError(f"--checkpoint {checkpoint} is a directory")
    if not checkpoint.parent.is_dir():
        raise ValueError(f"--checkpoint {checkpoint}: directory {checkpoint.parent} does not exist")


def _output_target(output: str) -> Path:
    """The regular file ``--output`` names, checked before any request is sent.

    The export is renamed onto this path, so a symlink is followed (the rename replaces
    the file it points to, not the link), and anything but a regular file is refused:
    a rename would replace a FIFO or a device with a plain file, and onto a directory
    it fails, but only after every record was fetched.
    """
    target = Path(os.path.realpath(output))
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:  # a new file (or a dangling link's target): created
        return target
    if stat.S_ISDIR(mode):
        raise ValueError(f"--output {output} is a directory")
    if not stat.S_ISREG(mode):
        raise ValueError(f"--output {output} is not a regular file")
    if sys.platform == "win32":
        # Windows refuses to replace a file another program holds open (Excel locks the
        # CSV it shows) or one marked read-only, and says so only at the rename. Opening
        # it for writing (no truncation, nothing written) meets the same refusal now.
        try:
            os.close(os.open(target, os.O_WRONLY))
        except OSError as exc:
            raise OSError(
                f"--output {output} cannot be replaced ({exc.strerror}): "
                "is it open in another program, or read-only?"
            ) from None
    return target


def _temporary_name(target: Path) -> re.Pattern[str]:
    """The names :func:`_create_beside` gives the temporary files of ``target``."""
    return re.compile(re.escape(f".{target.name}.") + r"[0-9a-f]{8}\.tmp")


def _create_beside(target: Path) -> tuple[Path, IO[bytes], bool]:
    """A new file with a random name beside ``target``, opened for writing, and whether
    it holds an exclusive ``flock`` (until closed): what tells the next export that this
    one is alive (:func:`_remove_stale_temporaries`)."""
    # Not mkstemp: its 0600 would become the output's mode on rename, unlike the
    # checkpointed route's and any plain open()'s. "x" refuses a name that exists.
    while True:
        path = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            handle = path.open("xb")
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
        locked = _lock(handle.fileno(), path)
        if locked is not False:
            return path, handle, bool(locked)
        # Taken for a killed export's by one starting, between our open and our lock (it
        # holds the lock, or has removed the file): start again on a new name.
        handle.close()


def _lock(fd: int, path: Path) -> bool | None:
    """Take an exclusive ``flock`` on ``fd``, the file open at ``path``, without waiting:
    ``True`` when taken and ``path`` still names that file; ``False`` when another open
    file holds the lock, or ``path`` has been removed or replaced meanwhile; ``None``
    where there is no ``flock`` (Windows, file systems without it)."""
    if fcntl is None:  # pragma: no cover - Windows
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    try:
        return os.path.samestat(os.fstat(fd), os.lstat(path))
    except FileNotFoundError:
        return False


def _remove_stale_temporaries(target: Path) -> None:
    """Remove the temporary files of exports to ``target`` that were killed (SIGKILL, a
    power cut) before they could remove them: those no process holds locked.

    A running export holds its temporary file's ``flock`` until it is renamed or
    removed, so one this process can lock is no running export's. Nothing is removed
    where a lock cannot be taken (Windows, file systems without ``flock``)."""
    if fcntl is None:  # pragma: no cover - Windows
        return
    pattern = _temporary_name(target)
    try:
        names = [name for name in os.listdir(target.parent) if pattern.fullmatch(name)]
    except OSError:
        return
    for name in names:
        path = target.parent / name
        try:
            # Not following a link; not waiting on a FIFO's writer.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode) and _lock(fd, path):
                os.unlink(path)
        except OSError:
            pass  # gone meanwhile, or not ours to remove: left as it is
        finally:
            os.close(fd)


async def _run_export(
    client: ConvosoClient,
    *,
    start: date,
    end: date,
    filters: dict[str, Any],
    stages: Sequence[str | None],
    fmt: str,
    output: str,
    checkpoint: Path | None,
    concurrency: int | None,
    bar: _Bar,
    page_size: int = 5000,
) -> tuple[int, list[CallbackExport]]:
    """Export to ``output`` atomically; return (records written, the exports run)."""
    if output == "-" and fmt == "parquet":
        raise ValueError("parquet output cannot go to stdout: pass --output PATH")
    if checkpoint is not None:
        if fmt == "parquet" or output == "-":
            raise ValueError("--checkpoint needs --format jsonl or csv and an --output file")
        if len(stages) > 1:
            raise ValueError("--checkpoint works with at most one --stage")
        _checkpoint_place(checkpoint)
    out = _Output(output, checkpoint=checkpoint)
    writer: Writer | None = None
    exports: list[CallbackExport] = []
    written = 0
    # Each export de-duplicates only the records it hands out itself. With several stages,
    # a callback whose stage changes between two of them (PENDING, then DISMISSED) would
    # be written twice; on a resume, so would one that moved from a window the partial
    # output holds into one still to walk (rescheduled to a later day meanwhile).
    written_ids = SeenIds() if len(stages) > 1 else None

    def output_state(window: ExportWindow) -> dict[str, Any]:
        assert writer is not None
        return {"output_bytes": writer.flush(), "format": fmt}

    try:
        for stage in stages:
            export = client.callbacks.export(
                start,
                end,
                stage=stage,
                concurrency=concurrency,
                progress=bar.update,
                checkpoint=checkpoint,
                # Called only with a checkpoint; without one, commit() syncs the whole
                # output once.
                before_checkpoint=output_state,
                page_size=page_size,
                # Removed by out.commit(), after the rename: until then a rerun must
                # find it to resume, should the rename onto the target fail.
                keep_checkpoint=True,
                **filters,
            )
            exports.append(export)
            if writer is None:
                resume = _resume_bytes(export, checkpoint, fmt)
                writer = open_writer(fmt, out.open(resume), resume=resume is not None)
                if resume is not None:  # --checkpoint: one stage, so written_ids was None
                    written_ids = _ids_written(out, fmt)
            async for callback in export:
                if written_ids is not None and not written_ids.add(callback.id):
                    continue
                writer.write(callback)
                written += 1
        if writer is None:  # pragma: no cover - argparse guarantees one stage entry
            raise ValueError("nothing to export")
        writer.close()
        out.commit()
    except BaseException as exc:
        if writer is not None:
            writer.discard()
        out.abandon()
        if out.stdout and _windows_closed_pipe(exc):
            raise BrokenPipeError(errno.EPIPE, "the reader of stdout has gone") from exc
        raise
    return written, exports


def _windows_closed_pipe(exc: BaseException) -> bool:
    """Whether ``exc``, raised while the records went to stdout, is Windows' report of a
    reader that has gone (``| head``): EINVAL there, not EPIPE (CPython issue 79935).
    Nothing else in an export to stdout touches a file."""
    return sys.platform == "win32" and isinstance(exc, OSError) and exc.errno == errno.EINVAL


def _resume_bytes(export: CallbackExport, checkpoint: Path | None, fmt: str) -> int | None:
    """The size of partial output the checkpoint vouches for, or ``None`` to start afresh.

    The export skips the windows the checkpoint records as done, so their records must
    already be in the partial output: without the CLI's state saying how much of it
    (a checkpoint written by the library's ``export()``, or edited), resuming would
    silently leave them out, so it is refused rather than guessed.
    """
    if not export.resume_windows_done:  # nothing done yet: no output to keep
        return None
    state = export.resume_state or {}
    size = state.get("output_bytes")
    if (
        state.get("format") not in FORMATS
        or not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
    ):
        raise ValueError(
            f"checkpoint {checkpoint} records {export.resume_windows_done} completed "
            "windows but not the output written for them (was it written by "
            "convoso-async export?): remove it to start over"
        )
    if state["format"] != fmt:
        raise ValueError(f"the checkpoint was written for --format {state['format']}")
    return size


def _ids_written(out: _Output, fmt: str) -> SeenIds:
    """The ids in a resumed export's partial output, truncated by now to the windows the
    checkpoint vouches for; a ``ValueError`` if it does not hold such records."""
    assert out.partial is not None
    seen = SeenIds()
    limit = csv.field_size_limit()
    try:
        if fmt == "jsonl":
            with out.partial.open("rb") as handle:
                for line in handle:
                    seen.add(_written_id(orjson.loads(line)["id"]))
            return seen
        # A field as long as the writer wrote it (comments past csv's 128 KiB default).
        csv.field_size_limit(sys.maxsize)
        with out.partial.open(encoding="utf-8", newline="") as text:
            rows = csv.reader(text)
            next(rows, None)  # the header
            for row in rows:
                seen.add(_written_id(row[0]))
        return seen
    except (ValueError, KeyError, IndexError, TypeError, csv.Error) as exc:
        raise ValueError(
            f"{out.partial} does not hold the {fmt} records the checkpoint vouches for "
            f"({type(exc).__name__}): remove the checkpoint to start over"
        ) from None
    finally:
        csv.field_size_limit(limit)


def _written_id(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("an id that is not a string")
    return value


def _configure_logging(verbose: bool) -> logging.Handler | None:
    """Debug logging of the client on stderr (``--verbose``); the handler, to remove."""
    if not verbose:
        return None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return handler


# --- commands -------------------------------------------------------------------------


async def _export_command(args: argparse.Namespace, err: Console) -> int:
    # A stage given twice would be exported twice: each once, in the order first given.
    stages: list[str | None] = list(dict.fromkeys(args.stage)) if args.stage else [None]
    started = time.perf_counter()
    async with _client(args) as client:
        with _Bar(err, not args.quiet and err.is_terminal) as bar:
            written, exports = await _run_export(
                client,
                start=args.start_date,
                end=args.end_date,
                filters=_filters(args),
                stages=stages,
                fmt=args.format,
                output=args.output,
                checkpoint=args.checkpoint,
                concurrency=args.concurrency,
                bar=bar,
                page_size=args.page_size,
            )
        elapsed = time.perf_counter() - started
        if not args.quiet:
            pages = sum(e.pages_fetched for e in exports)
            probes = sum(e.probes for e in exports)
            where = "stdout" if args.output == "-" else args.output
            # A resumed export's output holds the records of the windows the checkpoint
            # vouched for too (one export: --checkpoint takes at most one --stage).
            resumed = exports[0].progress.records_done - written if args.checkpoint else 0
            before = f" ({resumed:,} of them before the resume)" if resumed > 0 else ""
            # markup=False: a path such as calls[red].jsonl is a name, not a style.
            # soft_wrap: one line in a log, not broken at rich's 80 columns off a terminal.
            err.print(
                f"exported {written + resumed:,} callbacks to {where}{before} in {elapsed:.1f}s "
                f"({_count(probes, 'probe')}, {_count(pages, 'page')}, "
                f"{_count(client.requests_sent, 'request')})",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    return EXIT_OK


async def _search_command(args: argparse.Namespace, out: Console) -> int:
    async with _client(args) as client:
        page = await client.callbacks.search_page(
            limit=args.limit,
            start_date=args.start_date,
            end_date=args.end_date,
            stage=args.stage,
            **_filters(args),
        )
    table = Table(title=f"{len(page.results)} of {page.total:,} callbacks")
    columns = ("id", "callback_time", "stage", "recipient", "campaign_name", "user", "lead_id")
    for name in columns:
        table.add_column(name, overflow="fold")
    for callback in page.results:
        table.add_row(*(_cell(getattr(callback, name)) for name in columns))
    out.print(table)
    return EXIT_OK


def _cell(value: object) -> Text:
    """A table cell shown literally: server strings such as ``Jane [/x] Smith`` are not markup."""
    if value is None:
        return Text("")
    if isinstance(value, datetime):
        return Text(value.isoformat(sep=" "))
    return Text(str(value))


async def _demo_command(args: argparse.Namespace, out: Console, err: Console) -> int:
    if args.records < 0 or args.days < 1:
        raise ValueError("--records must be >= 0 and --days >= 1")
    from .testing import ConvosoEmulator

    start = date(2026, 3, 1)
    end = start + timedelta(days=args.days - 1)
    hot_days = _demo_hot_days(args.records, start, args.days)
    if not args.quiet:
        crowded = "".join(f" ({n:,} on {day})" for day, n in hot_days.items())
        err.print(
            f"building {args.records:,} synthetic callbacks over {args.days} "
            f"{'day' if args.days == 1 else 'days'}{crowded} ...",
            highlight=False,
            soft_wrap=True,
        )
    emulator = ConvosoEmulator(
        args.records, seed=args.seed, start_date=start, days=args.days, hot_days=hot_days
    )
    started = time.perf_counter()
    async with (
        emulator,
        ConvosoClient(emulator.auth_token, base_url=emulator.base_url) as client,
    ):
        with _Bar(err, not args.quiet and err.is_terminal) as bar:
            written, exports = await _run_export(
                client,
                start=start,
                end=end,
                filters={},
                stages=[None],
                fmt="jsonl",
                output=args.output,
                checkpoint=None,
                concurrency=None,
                bar=bar,
            )
        elapsed = time.perf_counter() - started
        stored = len(emulator.store)
        if not args.quiet:  # -q: "no progress bar or summary"
            summary = _demo_summary(args.output, written, stored, exports[0], client, elapsed)
            # With -o - stdout is the records: the table goes beside the progress bar.
            (err if args.output == "-" else out).print(summary)
    if written != stored:
        err.print(f"error: exported {written} records but the emulator holds {stored}")
        return EXIT_MISMATCH
    return EXIT_OK


def _demo_summary(
    output: str,
    written: int,
    stored: int,
    export: CallbackExport,
    client: ConvosoClient,
    elapsed: float,
) -> Table:
    """The demo's closing table: what was exported, against the store, and at what cost."""
    # The path is a row, not the title: a title wraps at the table's width, which the
    # figures set, and a Text so that a name such as calls[red].jsonl is not markup.
    table = Table(title="demo", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("exported to", Text(output))
    rows = [
        ("records exported", f"{written:,}"),
        ("records in the emulator", f"{stored:,}"),
        ("windows", f"{len(export.windows)}"),
        ("probes", f"{export.probes}"),
        ("pages", f"{export.pages_fetched}"),
        ("requests", f"{client.requests_sent}"),
        ("retries", f"{client.retries}"),
        ("elapsed", f"{elapsed:.2f}s"),
        ("records/s", f"{written / elapsed:,.0f}" if elapsed > 0 else "-"),
    ]
    for row in rows:
        table.add_row(*row)
    return table


def _demo_hot_days(records: int, start: date, days: int) -> dict[date, int]:
    """One crowded day, beyond the cap when the store is big enough, so the split is
    exercised; none over a single day, which would have to hold every record itself."""
    if days < 2:
        return {}
    hot = 56_000 if records >= 56_000 + days else records // 2
    return {start + timedelta(days=min(9, days - 1)): hot}


# --- entry point ----------------------------------------------------------------------


class _Terminated(Exception):
    """SIGTERM or SIGHUP arrived: the command was cancelled and has cleaned up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: The signals that cancel a command: the last line it prints for each, and its exit code.
_ENDING_SIGNALS: dict[int, tuple[str, int]] = {
    signal.SIGTERM: ("SIGTERM: terminated", EXIT_TERMINATED)
}
_SIGHUP = getattr(signal, "SIGHUP", None)  # not on Windows
if _SIGHUP is not None:
    _ENDING_SIGNALS[_SIGHUP] = ("SIGHUP: hangup", EXIT_HANGUP)


async def _terminable(command: Coroutine[Any, Any, int]) -> int:
    """Run ``command``, cancelled by SIGTERM or SIGHUP as asyncio.run cancels it on Ctrl-C.

    Python's default for SIGTERM (``systemctl stop``, ``timeout``, ``kill``) and SIGHUP
    (the terminal closed, without ``nohup``) ends the process on the spot: an export's
    temporary output stayed behind under a random name, one more on every run. Cancelled
    instead, the export removes it (or keeps the checkpointed partial for the rerun) and
    closes its connections, as on Ctrl-C.
    """
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)
        loop.call_soon_threadsafe(task.cancel)

    previous: dict[int, Any] = {}
    try:
        for signum in _ENDING_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup's SIGHUP stays ignored
                previous[signum] = signal.signal(signum, on_signal)
    except ValueError:  # not the main thread: signals are not ours to handle
        return await command
    try:
        return await command
    except asyncio.CancelledError:
        if not received:
            raise
        task.uncancel()
        raise _Terminated(received[0]) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        from .testing.__main__ import main as emulator_main

        try:
            return emulator_main(args_list[1:])
        except SystemExit as exc:  # its argparse: --help or a usage error
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler = _configure_logging(args.verbose)
    err = Console(stderr=True)
    out = Console()
    strict_stdout = _tolerant_stdout()
    try:
        if args.command == "export":
            return asyncio.run(_terminable(_export_command(args, err)))
        if args.command == "search":
            return asyncio.run(_terminable(_search_command(args, out)))
        return asyncio.run(_terminable(_demo_command(args, out, err)))
    except KeyboardInterrupt:
        _error("KeyboardInterrupt: interrupted")
        return EXIT_INTERRUPTED
    except _Terminated as exc:
        line, code = _ENDING_SIGNALS[exc.signum]
        with contextlib.suppress(OSError):  # after SIGHUP, the terminal may be gone
            _error(line)
        return code
    except BrokenPipeError:  # before OSError: the reader went away (`| head`), not a failure
        return _stdout_closed()
    except ConvosoError as exc:
        _error(f"{type(exc).__name__}: {exc}")
        return EXIT_API
    except (ValueError, ImportError) as exc:
        _error(f"{type(exc).__name__}: {exc}")
        return EXIT_USAGE
    except OSError as exc:
        _error(f"{type(exc).__name__}: {exc}")
        return EXIT_OUTPUT
    finally:
        if strict_stdout is not None:
            with contextlib.suppress(OSError, ValueError):  # (closed, or its reader gone)
                strict_stdout.reconfigure(errors="strict")
        if handler is not None:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)


def _tolerant_stdout() -> io.TextIOWrapper | None:
    """Let stdout escape what its encoding cannot hold, as stderr always does; return it
    if it was strict (to restore), else ``None``.

    On Windows, before Python's UTF-8 mode, stdout redirected to a file or a pipe is in
    the ANSI code page (cp1252): a name beyond it in the ``search`` table raised
    ``UnicodeEncodeError`` after the search had succeeded. The records of ``-o -`` go to
    its binary buffer as UTF-8, untouched by this.
    """
    stream = sys.stdout
    if not isinstance(stream, io.TextIOWrapper) or stream.errors != "strict":
        return None
    try:
        stream.reconfigure(errors="backslashreplace")
    except (OSError, ValueError):  # pragma: no cover - closed, or its reader gone
        return None
    return stream


def _stdout_closed() -> int:
    """End quietly, as a process that SIGPIPE ends (Python ignores the signal)."""
    # Point stdout at /dev/null, so the interpreter's flush at exit does not raise again
    # ("Exception ignored ... BrokenPipeError"). See the Python docs, "Note on SIGPIPE".
    with contextlib.suppress(OSError, ValueError):  # stdout may have no descriptor
        stdout = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stdout)
        os.close(devnull)
    return EXIT_PIPE


def _error(line: str) -> None:
    print(f"error: {' '.join(line.split())}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Run the emulator as a standalone server: ``python -m convoso_async.testing``.

The project CLI's ``convoso-async emulator ...`` delegates here, hence the stable
``main(argv) -> int`` signature. Serves until SIGINT or SIGTERM, then shuts down cleanly
and returns 0; a port out of range is a usage error (2), an address it cannot bind (the
port is taken, the host unknown) one line ``error: ...`` and exit 3. The first lines on
stdout are machine-readable::

    base_url: http://127.0.0.1:8787/v1
    auth_token: emulator-token
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from datetime import date

from ._emulator import DEFAULT_AUTH_TOKEN, ConvosoEmulator
from ._faults import Faults
from ._store import MAX_ROWS

# The project CLI's exit code for a file or address it cannot use (not imported from it:
# the emulator never imports the client).
EXIT_UNAVAILABLE = 3


def _port(text: str) -> int:
    # Checked here, where argparse turns it into a usage line; bind() would raise a
    # bare OverflowError.
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535: {port}")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convoso-async emulator",
        description="Serve a local Convoso Callbacks API with synthetic data.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=_port, default=8787, help="0 picks a free port (default: %(default)s)"
    )
    parser.add_argument(
        "--records", type=int, default=100_000, help="synthetic callbacks (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="data and fault seed (default: %(default)s)"
    )
    parser.add_argument(
        "--start-date",
        type=date.fromisoformat,
        default=date(2026, 3, 1),
        help="first day of the data, YYYY-MM-DD (default: %(default)s)",
    )
    parser.add_argument(
        "--days", type=int, default=30, help="days the data spans (default: %(default)s)"
    )
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="added to every answer (default: %(default)s)"
    )
    parser.add_argument(
        "--live-dialect", action="store_true", help="answer in the live API's dialect"
    )
    parser.add_argument(
        "--auth-token", default=DEFAULT_AUTH_TOKEN, help="token to accept (default: %(default)s)"
    )
    return parser  # fmt: skip


async def _serve(args: argparse.Namespace) -> int:
    emulator = ConvosoEmulator(
        args.records,
        seed=args.seed,
        start_date=args.start_date,
        days=args.days,
        live_dialect=args.live_dialect,
        faults=Faults(latency=args.latency_ms / 1000),
        host=args.host,
        port=args.port,
        auth_token=args.auth_token,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Windows' loops have none: Ctrl-C cancels the task (asyncio.run), which stops
        # the server all the same; only the handlers added are removed below.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
            signals.append(sig)
    try:
        async with emulator:
            print(f"base_url: {emulator.base_url}", flush=True)
            print(f"auth_token: {emulator.auth_token}", flush=True)
            print(
                f"Serving {len(emulator.store)} callbacks (seed {args.seed}"
                f"{', live dialect' if args.live_dialect else ''}); Ctrl-C to stop.",
                flush=True,
            )
            await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    print("Emulator stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), serve until SIGINT/SIGTERM, return 0.

    Returns 3 when the address cannot be bound; raises ``SystemExit(2)`` on bad arguments.
    """
    args = _parser().parse_args(argv)
    if not 0 <= args.records <= MAX_ROWS or args.days < 1 or args.latency_ms < 0:
        _parser().error(f"--records must be 0-{MAX_ROWS}, --latency-ms >= 0, --days >= 1")
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:  # Ctrl-C where the loop has no signal handlers (Windows)
        print("Emulator stopped.", flush=True)  # (the server is closed: the task unwound)
        return 0
    except OSError as exc:  # an expected failure (port taken, host unknown): no traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Export: ``convoso-async export`` to JSONL and Parquet, 200,000 records from the emulator.

The emulator (200,000 callbacks over 30 days, no latency) runs in a child process, so
its CPU is not charged to the export. Three measurements, in interleaved rounds
(medians of ``--repeats``):

1. **The CLI, end to end**: ``convoso-async export --format jsonl|parquet -o FILE -q``
   run as a subprocess (interpreter start, imports, plan probes, walk, write, atomic
   rename), in records/s of wall time.
2. **Baseline, same run**: the same ``client.callbacks.export()`` in a subprocess with
   no writer at all (each record read and dropped): what the network, the emulator and
   decoding allow. ``CLI / drain`` is the price of encoding and writing.
3. **Where the time goes**, in-process: the CLI's own writer (``open_writer``) fed by
   ``export``, timing every ``__anext__`` of the export iterator (network wait + the
   client's CPU: HTTP, JSON, typed decode) and every ``writer.write`` plus the final
   ``close`` (encoding and file I/O). The iterator's wall time is split further with
   ``time.thread_time``: CPU on this thread (decode) vs the rest (waiting on the
   network/emulator). Shares are of the export's total wall time.

    python benchmarks/bench_export.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, row

from convoso_async import ConvosoClient

RECORDS, DAYS = 200_000, 30
START, END = date(2026, 3, 1), date(2026, 3, 30)


async def _drain(base_url: str, token: str) -> int:
    count = 0
    async with ConvosoClient(token, base_url=base_url) as client:
        async for callback in client.callbacks.export(START, END):
            count += bool(callback.id)
    return count


def run_cli(fmt: str, base_url: str, token: str, out: Path) -> float:
    env = {**os.environ, "CONVOSO_AUTH_TOKEN": token}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "convoso_async.cli", "export", "--start-date", str(START),
         "--end-date", str(END), "--format", fmt, "--output", str(out), "--base-url",
         base_url, "-q"],
        check=True, env=env,
    )  # fmt: skip
    return time.perf_counter() - started


def run_drain(base_url: str, token: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--drain", base_url, token], check=True, capture_output=True
    )
    return time.perf_counter() - started


async def instrumented(fmt: str, base_url: str, token: str, out: Path) -> dict[str, float]:
    from convoso_async._writers import open_writer

    clock, cpu = time.perf_counter, time.thread_time
    wait_wall = wait_cpu = write_wall = 0.0
    count = 0
    started = clock()
    async with ConvosoClient(token, base_url=base_url) as client:
        with open(out, "wb") as handle:  # noqa: ASYNC230 - the CLI writes the same way
            writer = open_writer(fmt, handle)
            iterator = client.callbacks.export(START, END).__aiter__()
            while True:
                t0, c0 = clock(), cpu()
                try:
                    callback = await iterator.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    t1 = clock()
                    wait_wall += t1 - t0
                    wait_cpu += cpu() - c0
                writer.write(callback)
                write_wall += clock() - t1
                count += 1
            t2 = clock()
            writer.close()
            write_wall += clock() - t2
    total = clock() - started
    return {
        "count": count,
        "total": total,
        "iterator": wait_wall,
        "iterator_cpu": wait_cpu,
        "writer": write_wall,
        "bytes": out.stat().st_size,  # noqa: ASYNC240
    }


def main(repeats: int) -> None:
    print(
        f"bench_export: {RECORDS:,} callbacks over {DAYS} days from the emulator "
        f"(child process, no latency), median of {repeats} interleaved rounds"
    )
    with EmulatorProcess(RECORDS, seed=1, days=DAYS) as emu, tempfile.TemporaryDirectory() as tmp:
        url, token = emu.base_url, emu.auth_token
        out = {fmt: Path(tmp, f"export.{fmt}") for fmt in ("jsonl", "parquet")}
        count = asyncio.run(_drain(url, token))  # warm-up, and the record count
        walls: dict[str, list[float]] = {"drain": [], "jsonl": [], "parquet": []}
        parts: dict[str, list[dict[str, float]]] = {"jsonl": [], "parquet": []}
        for _ in range(repeats):
            walls["drain"].append(run_drain(url, token))
            for fmt in ("jsonl", "parquet"):
                walls[fmt].append(run_cli(fmt, url, token, out[fmt]))
            for fmt in ("jsonl", "parquet"):
                parts[fmt].append(asyncio.run(instrumented(fmt, url, token, out[fmt])))
        sizes = {fmt: out[fmt].stat().st_size for fmt in out}
    wall = {name: statistics.median(values) for name, values in walls.items()}
    print(f"  (a) end to end, subprocess, {count:,} records")
    row("export(), no writer (drain) - baseline", f"{count / wall['drain']:,.0f} rec/s", "1.00x")
    for fmt in ("jsonl", "parquet"):
        row(
            f"convoso-async export --format {fmt}",
            f"{count / wall[fmt]:,.0f} rec/s",
            f"{wall['drain'] / wall[fmt]:.2f}x",
        )
        row(f"  output size, {fmt}", f"{sizes[fmt] / 2**20:,.1f} MiB")
    print("  (b) where the time goes, in-process (shares of the export's wall time)")
    for fmt in ("jsonl", "parquet"):
        med = {key: statistics.median(p[key] for p in parts[fmt]) for key in parts[fmt][0]}
        total = med["total"]
        waiting = med["iterator"] - med["iterator_cpu"]
        row(f"{fmt}: total", f"{med['count'] / total:,.0f} rec/s", f"{total:.2f} s")
        row(f"{fmt}:   waiting on network/emulator", f"{waiting:.2f} s", f"{waiting / total:.0%}")
        row(
            f"{fmt}:   client CPU inside the iterator",
            f"{med['iterator_cpu']:.2f} s",
            f"{med['iterator_cpu'] / total:.0%}",
        )
        row(f"{fmt}:   writer (encode + write)", f"{med['writer']:.2f} s",
            f"{med['writer'] / total:.0%}")  # fmt: skip
        rest = total - med["iterator"] - med["writer"]
        row(f"{fmt}:   rest (setup, close session)", f"{rest:.2f} s", f"{rest / total:.0%}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--drain":
        print(asyncio.run(_drain(sys.argv[2], sys.argv[3])))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round instead of --repeats")
    args = parser.parse_args()
    main(1 if args.quick else args.repeats)

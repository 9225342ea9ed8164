"""Memory: flat peak RSS while iterating, and the retained size of 55,000 Callbacks.

(a) Peak RSS while iterating 500,000 records vs iterating 50,000. One filter combination
    reaches at most 55,000 records by offset paging, so 500,000 records cannot come from
    one search. The server is the emulator (a child process) holding 500,000 callbacks
    spread evenly over 30 days (16,667 a day). Two ways to walk them, each run in a fresh
    child process so that its peak RSS (``VmHWM``) belongs to that run alone:

    * ``search() x windows``: ``client.callbacks.search()`` over consecutive 3-day windows
      (~50,000 records each, under the cap), one after the other, at concurrency 4;
      the 50,000 run is the first window, the 500,000 run all ten.
    * ``export()`` (when the package has it): ``client.callbacks.export()`` over 3 days
      vs 30 days, which plans its own windows.

    Each record is touched (its id is read) and dropped, as a streaming consumer would.
    The ratio is peak(500,000) / peak(50,000); both peaks include the interpreter and
    imports, so the child's RSS right after imports is printed too, with the growth above
    it, which is the figure to watch if the ratio looks flattering.

(b) tracemalloc, retained bytes after decoding 55,000 records (11 bodies of 5000, the
    bodies and envelopes freed): a list of ``Callback`` objects (the client's decode
    path) vs the same records as plain dicts from ``orjson.loads``. The time memo starts
    empty, so the datetimes it keeps are charged to the Callbacks. Median of repeats.

    python benchmarks/bench_memory.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import tracemalloc
from datetime import date, timedelta
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, make_bodies, row, typed_pages

from convoso_async import ConvosoClient, RetryPolicy
from convoso_async import _converter as converter

RECORDS, DAYS, WINDOW_DAYS = 500_000, 30, 3
FIRST_DAY = date(2026, 3, 1)


def _windows(count: int) -> list[tuple[date, date]]:
    starts = [FIRST_DAY + timedelta(days=WINDOW_DAYS * i) for i in range(count)]
    return [(s, s + timedelta(days=WINDOW_DAYS - 1)) for s in starts]


def _status_kib(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in KiB.

    Not ``ru_maxrss``: Linux carries it across ``exec`` from the parent, so a child
    started by a parent that once held more would report the parent's peak.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


async def _child_walk(mode: str, base_url: str, token: str, windows: int) -> dict[str, int]:
    before = _status_kib("VmRSS")
    count = 0
    async with ConvosoClient(
        token, base_url=base_url, max_concurrency=8, retry=RetryPolicy(attempts=3)
    ) as client:
        if mode == "search":
            for start, end in _windows(windows):
                search = client.callbacks.search(
                    start_date=start, end_date=end, page_size=5000, concurrency=4
                )
                async for callback in search:
                    count += bool(callback.id)
        else:
            _, end = _windows(windows)[-1]
            async for callback in client.callbacks.export(FIRST_DAY, end):
                count += bool(callback.id)
    peak = _status_kib("VmHWM")
    return {"count": count, "before_kib": before, "peak_kib": peak}


def run_child(mode: str, base_url: str, token: str, windows: int) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, base_url, token, str(windows)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def rss_part(repeats: int) -> None:
    modes = ["search"]
    from convoso_async._client import Callbacks

    if hasattr(Callbacks, "export"):
        modes.append("export")
    print(
        f"  (a) peak RSS, fresh child per run, emulator of {RECORDS:,} callbacks over {DAYS} "
        f"days in its own process; median of {repeats}"
    )
    with EmulatorProcess(RECORDS, seed=1, days=DAYS) as emu:
        for mode in modes:
            results: dict[int, list[dict[str, int]]] = {1: [], 10: []}
            for _ in range(repeats):
                for windows in (1, 10):  # interleaved
                    results[windows].append(run_child(mode, emu.base_url, emu.auth_token, windows))
            small, large = (
                {
                    key: statistics.median(r[key] for r in results[w])
                    for key in ("count", "before_kib", "peak_kib")
                }
                for w in (1, 10)
            )
            label = "search() x 3-day windows" if mode == "search" else "export()"
            for figures in (small, large):
                growth = (figures["peak_kib"] - figures["before_kib"]) / 1024
                row(
                    f"{label}: {figures['count']:,.0f} records",
                    f"{figures['peak_kib'] / 1024:,.0f} MiB peak",
                    f"+{growth:,.0f} MiB",
                )
            ratio = large["peak_kib"] / small["peak_kib"]
            growth_ratio = (large["peak_kib"] - large["before_kib"]) / max(
                1, small["peak_kib"] - small["before_kib"]
            )
            row(
                f"{label}: peak ratio 500k / 50k",
                f"{ratio:.2f}x",
                "met" if ratio < 1.5 else "MISSED",
            )
            row(f"{label}: growth-above-imports ratio", f"{growth_ratio:.2f}x", "")
    print("     (+N MiB = peak minus the child's RSS after imports; target: peak ratio < 1.5x)")


def retained_bytes(build) -> int:  # type: ignore[no-untyped-def]
    """Bytes still allocated after ``build()`` returns, while its result is held."""
    converter._TIME_CACHE.clear()
    converter._TIME_CACHE[None] = None
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del held
    return after - before


def tracemalloc_part(repeats: int) -> None:
    bodies = list(make_bodies(55_000, 5000).values())

    def as_dicts() -> list[dict[str, str]]:
        held: list[dict[str, str]] = []
        for body in bodies:
            held.extend(orjson.loads(body)["results"])
        return held

    def as_callbacks() -> list[object]:
        held: list[object] = []
        for page in typed_pages(bodies, 5000):
            held.extend(page.results)
        return held

    sizes: dict[str, list[int]] = {"dicts": [], "callbacks": []}
    for _ in range(repeats):
        sizes["dicts"].append(retained_bytes(as_dicts))
        sizes["callbacks"].append(retained_bytes(as_callbacks))
    dicts = statistics.median(sizes["dicts"])
    callbacks = statistics.median(sizes["callbacks"])
    print("  (b) retained after decoding 55,000 records, bodies freed (tracemalloc)")
    row("plain dicts from orjson.loads", f"{dicts / 2**20:,.1f} MiB", "1.00x")
    row(
        "Callback objects (client decode path)",
        f"{callbacks / 2**20:,.1f} MiB",
        f"{callbacks / dicts:.2f}x",
    )
    row("per record: dicts / Callbacks", f"{dicts / 55_000:,.0f} / {callbacks / 55_000:,.0f} B")
    print(f"     target: <= 1.2x -> {'met' if callbacks <= 1.2 * dicts else 'MISSED'}")


def main(repeats: int) -> None:
    print("bench_memory")
    tracemalloc_part(repeats)
    rss_part(repeats)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, base_url, token, windows = sys.argv[2:6]
        print(json.dumps(asyncio.run(_child_walk(mode, base_url, token, int(windows)))))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one run of each instead")
    args = parser.parse_args()
    main(1 if args.quick else args.repeats)

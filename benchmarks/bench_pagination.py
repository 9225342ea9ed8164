"""Pagination: 55,000 records in pages of 5000 behind 100 ms of server latency.

Baseline: a hand-written sequential aiohttp loop doing only ``json.loads``. Then
``client.callbacks.search()`` at concurrency 1 and 8 (typed records), the three run in
interleaved rounds. The ideal at concurrency 8 is three round trips (the first page
alone, then 8, then 2) plus the time to decode 55,000 records; the report gives the ratio
to that ideal, the speedup over the loop in each round, and the concurrent walk's split
into CPU and waiting, against the CPU a 3x speedup would allow.

    nox -s bench -- or --  python benchmarks/bench_pagination.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import TOKEN, PageServer, interleaved_rounds, make_bodies, row, typed_pages

from convoso_async import ConvosoClient, RetryPolicy

TOTAL, PAGE, LATENCY = 55_000, 5_000, 0.100


async def sequential_loop(base_url: str) -> int:
    count = 0
    async with aiohttp.ClientSession() as session:
        offset = 0
        while True:
            form = {"auth_token": TOKEN, "offset": str(offset), "limit": str(PAGE)}
            async with session.post(f"{base_url}/callbacks/search", data=form) as response:
                page = json.loads(await response.read())
            count += len(page["results"])
            offset += PAGE
            if offset >= page["total"]:
                return count


async def client_walk(base_url: str, concurrency: int, cpu: list[float] | None = None) -> int:
    """The walk under test; appends the process CPU seconds it took to ``cpu`` if given."""
    started = time.process_time()
    async with ConvosoClient(
        TOKEN, base_url=base_url, max_concurrency=8, retry=RetryPolicy(attempts=1)
    ) as client:
        count = 0
        async for _ in client.callbacks.search(page_size=PAGE, concurrency=concurrency):
            count += 1
    if cpu is not None:
        cpu.append(time.process_time() - started)
    return count


def decode_seconds(repeats: int) -> float:
    bodies = list(make_bodies(TOTAL, PAGE).values())
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        for _ in typed_pages(bodies, PAGE):
            pass
        times.append(time.perf_counter() - started)
    return sorted(times[1:])[len(times[1:]) // 2]


async def main(repeats: int) -> None:
    print(f"bench_pagination: {TOTAL} records, pages of {PAGE}, {LATENCY * 1000:.0f} ms latency")
    cpu: list[float] = []  # the CPU seconds of each concurrency=8 walk
    with PageServer(TOTAL, PAGE, LATENCY) as server:
        url = server.base_url
        assert await sequential_loop(url) == TOTAL
        assert await client_walk(url, 8) == TOTAL
        times = await interleaved_rounds(
            {
                "loop": lambda: sequential_loop(url),
                "one": lambda: client_walk(url, 1),
                "eight": lambda: client_walk(url, 8, cpu),
            },
            repeats,
        )
    cpu = cpu[1:]  # the first is interleaved_rounds' warm-up
    base, one, eight = (statistics.median(times[name]) for name in ("loop", "one", "eight"))
    per_round = sorted(
        loop / walk for loop, walk in zip(times["loop"], times["eight"], strict=True)
    )
    decode = decode_seconds(repeats)
    ideal = 3 * LATENCY + decode  # the client's own decode path: orjson + typed records
    row("hand-written sequential loop (json.loads)", f"{TOTAL / base:,.0f} rec/s", "1.00x")
    row("search() concurrency=1 (typed)", f"{TOTAL / one:,.0f} rec/s", f"{base / one:.2f}x")
    row("search() concurrency=8 (typed)", f"{TOTAL / eight:,.0f} rec/s", f"{base / eight:.2f}x")
    row("ideal at 8: 3 x latency + decode", f"{ideal * 1000:.0f} ms")
    row("concurrency=8 wall time / ideal", f"{eight * 1000:.0f} ms", f"{eight / ideal:.2f}x")
    row(
        f"concurrency=8 speedup, each of {repeats} rounds",
        f"{per_round[0]:.2f}x-{per_round[-1]:.2f}x",
        f"{sum(r >= 3 for r in per_round)}/{repeats} >= 3x",
    )
    # The walk is CPU-bound once the second wave lands: its wall time is the waiting it
    # cannot avoid (two round trips) plus its CPU, so the speedup follows the machine.
    waiting = statistics.median(w - c for w, c in zip(times["eight"], cpu, strict=True))
    row("concurrency=8 CPU per walk (process time)", f"{statistics.median(cpu) * 1000:.0f} ms")
    row("concurrency=8 wall time minus CPU (waiting)", f"{waiting * 1000:.0f} ms")
    row("CPU per walk that 3x allows: loop / 3 - waiting", f"{(base / 3 - waiting) * 1000:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    asyncio.run(main(parser.parse_args().repeats))

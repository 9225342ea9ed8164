"""Overhead: 2,000 small searches at concurrency 50, the client vs bare aiohttp.

The emulator (10,000 callbacks, no latency) runs in a child process, so its CPU is not
charged to the measured client. The same 2,000 forms (``limit`` 1..20 and an offset,
drawn from a fixed seed) are sent by:

* bare aiohttp: one ``ClientSession`` (connector limit 50), ``asyncio.Semaphore(50)`` +
  ``gather``, each task posting the form and reading the body (no parsing);
* the client: ``ConvosoClient(max_concurrency=50)``, ``gather`` of ``search_page(...)``,
  i.e. validation, the semaphore, retries wrapper (one attempt), status and envelope
  checks, orjson parsing and typed records.

Both open their session inside the timed run. Rounds alternate the two (median of
``--repeats``). Two figures: wall-clock requests/s (which the emulator's own speed caps,
so both may sit near the server's limit), and this process's CPU time per request
(``time.process_time``), which is the client-side overhead itself.

    python benchmarks/bench_overhead.py [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, row

from convoso_async import ConvosoClient, RetryPolicy

REQUESTS, CONCURRENCY, RECORDS = 2_000, 50, 10_000


def forms(seed: int = 7) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randrange(0, RECORDS - 20), rng.randint(1, 20)) for _ in range(REQUESTS)]


async def bare(base_url: str, token: str, plan: list[tuple[int, int]]) -> int:
    slots = asyncio.Semaphore(CONCURRENCY)
    url = f"{base_url}/callbacks/search"
    connector = aiohttp.TCPConnector(limit=CONCURRENCY, limit_per_host=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(offset: int, limit: int) -> int:
            form = {"offset": str(offset), "limit": str(limit), "auth_token": token}
            async with slots, session.post(url, data=form) as response:
                return len(await response.read())

        sizes = await asyncio.gather(*(one(o, n) for o, n in plan))
    return len(sizes)


async def client(base_url: str, token: str, plan: list[tuple[int, int]]) -> int:
    async with ConvosoClient(
        token, base_url=base_url, max_concurrency=CONCURRENCY, retry=RetryPolicy(attempts=1)
    ) as convoso:
        pages = await asyncio.gather(
            *(convoso.callbacks.search_page(offset=o, limit=n) for o, n in plan)
        )
    return sum(len(page.results) for page in pages)


async def timed(run) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    await run()
    return time.perf_counter() - wall, time.process_time() - cpu


async def main(repeats: int) -> None:
    plan = forms()
    print(
        f"bench_overhead: {REQUESTS:,} searches (limit 1..20) at concurrency {CONCURRENCY}, "
        f"emulator of {RECORDS:,} in a child process, median of {repeats} interleaved rounds"
    )
    with EmulatorProcess(RECORDS, seed=1) as emu:
        url, token = emu.base_url, emu.auth_token
        runs = {"bare": lambda: bare(url, token, plan), "client": lambda: client(url, token, plan)}
        records = await client(url, token, plan)  # warm-up, and a check that both work
        await bare(url, token, plan)
        walls: dict[str, list[float]] = {name: [] for name in runs}
        cpus: dict[str, list[float]] = {name: [] for name in runs}
        for round_ in range(repeats):
            order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
            for name in order:
                wall, cpu = await timed(runs[name])
                walls[name].append(wall)
                cpus[name].append(cpu)
    wall = {name: statistics.median(values) for name, values in walls.items()}
    cpu = {name: statistics.median(values) for name, values in cpus.items()}
    rate = {name: REQUESTS / seconds for name, seconds in wall.items()}
    per = {name: seconds / REQUESTS * 1e6 for name, seconds in cpu.items()}
    print(f"  ({records:,} typed records per client run)")
    row("bare aiohttp: requests/s (wall)", f"{rate['bare']:,.0f} req/s", "1.00x")
    row("client search_page: requests/s (wall)", f"{rate['client']:,.0f} req/s",
        f"{rate['client'] / rate['bare']:.2f}x")  # fmt: skip
    row("bare aiohttp: client CPU per request", f"{per['bare']:,.0f} us", "1.00x")
    row("client search_page: client CPU per request", f"{per['client']:,.0f} us",
        f"{per['client'] / per['bare']:.2f}x")  # fmt: skip
    ratio = rate["client"] / rate["bare"]
    print(f"  target: client >= 0.8x bare aiohttp req/s -> {'met' if ratio >= 0.8 else 'MISSED'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of --repeats")
    args = parser.parse_args()
    asyncio.run(main(3 if args.quick else args.repeats))

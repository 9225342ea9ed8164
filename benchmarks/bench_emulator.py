"""Emulator at scale: build 1,000,000 callbacks, report memory and limit=5000 search times.

Prints figures only (no assertions). Each search is timed twice:

* in-process - the query alone (``CallbackStore.query``) and the full answer
  (validation, query, record rendering, JSON encoding) without HTTP;
* over HTTP on loopback - POST to the running emulator, body read, with aiohttp.

The same-run baseline is the unfiltered in-process query; other rows show their ratio to it.

    python benchmarks/bench_emulator.py [--records N] [--repeat K]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import statistics
import time
from collections.abc import Callable

import aiohttp
import orjson

from convoso_async.testing import ConvosoEmulator
from convoso_async.testing._api import handle, parse_search

SEARCHES: dict[str, dict[str, str]] = {
    "unfiltered": {},
    "stage=PENDING": {"stage": "PENDING"},
    "date window (3 days)": {"start_date": "2026-03-10", "end_date": "2026-03-12"},
    "deep offset=50000": {"offset": "50000"},
    "stage+recipient, offset=20000": {
        "stage": "COMPLETED",
        "recipient": "system",
        "offset": "20000",
    },
    "campaign+date window": {
        "campaign_id": "113",
        "start_date": "2026-03-01",
        "end_date": "2026-03-15",
    },
}


def rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) in MiB."""
    current = 0.0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def median_http_ms(
    http: aiohttp.ClientSession, url: str, form: dict[str, str], repeat: int
) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        async with http.post(url, data=form) as response:
            body = await response.read()
        times.append(time.perf_counter() - start)
        size = len(body)
    return statistics.median(times) * 1000, size


async def main(records: int, repeat: int) -> None:
    gc.collect()
    base_rss, _ = rss_mib()
    start = time.perf_counter()
    emulator = ConvosoEmulator(records=records, seed=1)
    build_s = time.perf_counter() - start
    gc.collect()
    rss, peak = rss_mib()
    print(f"records: {len(emulator.store):,}  build: {build_s:.1f} s")
    print(f"RSS: {rss:.0f} MiB now ({rss - base_rss:.0f} MiB for the store), peak {peak:.0f} MiB")
    store, token = emulator.store, emulator.auth_token
    print(f"\nlimit=5000 searches, median of {repeat} (ms):")
    header = f"{'search':32} {'total':>9} {'query':>8} {'answer':>8} {'HTTP':>8} {'body KiB':>9} {'x base':>7}"
    print(header)
    print("-" * len(header))
    async with emulator, aiohttp.ClientSession() as http:
        baseline = None
        for name, fields in SEARCHES.items():
            form = {"auth_token": token, "limit": "5000", **fields}
            query = parse_search(form, store)
            total, _ = store.query(query)
            query_ms = median_ms(lambda q=query: store.query(q), repeat)  # type: ignore[misc]
            answer_ms = median_ms(
                lambda f=form: orjson.dumps(handle("search", f, store, auth_token=token)[1]),  # type: ignore[misc]
                repeat,
            )
            http_ms, size = await median_http_ms(http, emulator.url("search"), form, repeat)
            baseline = baseline or query_ms
            print(
                f"{name:32} {total:>9,} {query_ms:>8.2f} {answer_ms:>8.2f} {http_ms:>8.2f}"
                f" {size / 1024:>9.0f} {query_ms / baseline:>7.2f}"
            )
    print(
        "\nquery = index lookup + page slice; answer = + validation, rendering, JSON; HTTP = + loopback"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.records, args.repeat))

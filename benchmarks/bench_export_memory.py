"""Peak RSS of exporting 50,000 vs 500,000 callbacks, and export throughput.

For each size an emulator is started as its own process (``python -m
convoso_async.testing``), so its memory is not counted; the export runs in a second,
fresh child process (``convoso-async export`` in-process via ``cli.main``), whose peak
RSS (``ru_maxrss``) is read when it exits. Prints figures, asserts nothing. Target: the
500,000-record export's peak under 1.5x the 50,000-record one's.

    .venv/bin/python benchmarks/bench_export_memory.py [--sizes 50000 500000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

TOKEN = "bench-token"

CHILD = r"""
import json, resource, sys, time
from convoso_async.cli import main
fmt, out = sys.argv[1], sys.argv[2]
started = time.perf_counter()
code = main(["export", "--start-date", "2026-03-01", "--end-date", "2026-03-30",
             "--format", fmt, "--output", out, "--quiet"])
elapsed = time.perf_counter() - started
print(json.dumps({"code": code, "elapsed": elapsed,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


@contextmanager
def emulator(records: int) -> Iterator[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "convoso_async.testing",
            "--port",
            "0",
            "--records",
            str(records),
            "--auth-token",
            TOKEN,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("base_url: "):
            raise RuntimeError(f"emulator did not start: {line!r}")
        yield line.split(": ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def export(base_url: str, fmt: str, directory: str) -> dict[str, float]:
    out = os.path.join(directory, f"out.{fmt}")
    env = {**os.environ, "CONVOSO_BASE_URL": base_url, "CONVOSO_AUTH_TOKEN": TOKEN}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, fmt, out], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["code"] != 0:
        raise RuntimeError(f"export failed: {done.stderr.strip()}")
    result["bytes"] = os.path.getsize(out)
    os.unlink(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[50_000, 500_000])
    args = parser.parse_args()
    peaks: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as directory:
        for size in args.sizes:
            with emulator(size) as base_url:
                for fmt in ("jsonl", "parquet"):
                    r = export(base_url, fmt, directory)
                    mb = r["maxrss_kb"] / 1024
                    if fmt == "jsonl":
                        peaks[size] = mb
                    print(
                        f"{size:>9,} records  {fmt:<8} peak RSS {mb:7.1f} MB  "
                        f"{r['elapsed']:6.2f} s  {size / r['elapsed']:>8,.0f} records/s  "
                        f"{r['bytes'] / 1e6:7.1f} MB written",
                        flush=True,
                    )
    small, large = args.sizes
    print(
        f"JSONL peak RSS ratio {large:,} / {small:,} records: "
        f"{peaks[large] / peaks[small]:.2f}x (target < 1.5x)"
    )


if __name__ == "__main__":
    main()

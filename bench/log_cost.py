"""Benchmark: the CPU of one access-log line as the API writes it (app/logs.py: the JSON formatter on stderr's
handler, here a file), against the same line written the way it was before 2026-12-07 (`json.dumps`,
`datetime.isoformat`, the thread and process names looked up for every record).
Each figure is the best of --repeat runs of --lines lines, in µs per line; the two ways alternate.

    .venv/bin/python bench/log_cost.py [--lines 20000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import timeit
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import logs  # noqa: E402


def old_timestamp(created: float) -> str:
    """The line's time as it was written before: datetime's own ISO text."""
    return datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")


def old_encode(line: dict) -> str:
    """The line as it was encoded before: json.dumps."""
    return json.dumps(line, default=str)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    # the logging module's own settings, before configure_logging changes them
    before_settings = (logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    with tempfile.TemporaryDirectory() as tmp:
        out = open(Path(tmp) / "stderr.log", "w")
        real_stderr, sys.stderr = sys.stderr, out
        try:
            logs.configure_logging("INFO")  # what the API does at start: the handler on (here) the file
        finally:
            sys.stderr = real_stderr
        access = logging.getLogger("app.access")
        logs.request_id_var.set("0f3c9a6e2b7d4e1f8a5c3b9d7e6f1a2b")
        # the same formatter both ways (the same keys); what changed is swapped in: its time and encoding, and the
        # logging module's settings
        now = (logs._timestamp, logs._encode, logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
        before = (old_timestamp, old_encode, *before_settings)

        def line() -> None:
            access.info("request", extra={"method": "GET", "path": "/api/v1/incidents/", "status": 200, "ms": 3.21})

        best: dict[str, float] = {"now": float("inf"), "before": float("inf")}
        for _ in range(args.repeat):
            for label, (timestamp, encode, threads, processes, multi) in (("now", now), ("before", before)):
                logs._timestamp, logs._encode = timestamp, encode
                logging.logThreads, logging.logProcesses, logging.logMultiprocessing = threads, processes, multi
                took = timeit.timeit(line, number=args.lines) / args.lines * 1e6
                best[label] = min(best[label], took)
        out.close()
        written = (Path(tmp) / "stderr.log").read_text().splitlines()
    assert all(json.loads(x)["msg"] == "request" for x in written[-3:])
    print(f"one access-log line, written to a file (best of {args.repeat} x {args.lines:,} lines):")
    print(f"  now     {best['now']:6.1f} µs")
    print(f"  before  {best['before']:6.1f} µs   ({best['before'] / best['now']:.1f}x)")


if __name__ == "__main__":
    main()

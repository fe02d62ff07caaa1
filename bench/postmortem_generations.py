"""Benchmark: postmortem generation end to end, on the public dataset (../shared/datasets).

    .venv/bin/python bench/postmortem_generations.py [--incidents 150] [--burst 50]   # the 200 dataset incidents

It starts its own local stack, the API under uvicorn and one Dramatiq worker (one process, two
threads, as `dev.py run` does). Each dataset incident is created OPEN with its timeline, then resolved
through the API (every severity set to trigger generation); the time is taken from the resolve call to
the `end` event of the generation's SSE stream (COMPLETED or REVIEW_REQUIRED). Printed: statuses, the
time from resolve to a finished log p50/p99, the worker's own processing_time and the drafting time
inside it p50/p99, sections written, evidence used; then a burst of `--burst` resolutions at once
(throughput of one worker). Sequential figures measure latency; the burst measures the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter

from harness import ROOT, api_server, local_stack  # noqa: I001 - puts the project on sys.path

import httpx  # noqa: E402

INCIDENTS = "/api/v1/incidents/"
GENERATIONS = "/api/knowledge/postmortem-generations/"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def make_token() -> str:
    from app.backends import connect
    from app.db import ensure_indexes
    from app.settings import get_settings
    from app.users import service as users
    from app.users.models import Classification, Role, UserCreate

    bk = connect(get_settings(), jobs=True)
    await ensure_indexes(bk)
    user = await users.create_user(bk, data=UserCreate(username="bench", role=Role.ADMIN,
                                                       clearance=Classification.RESTRICTED))
    token = await users.issue_token(bk, user=user)
    await bk.close()
    return token


def bodies(limit: int) -> list[dict]:
    """The dataset's incidents as create bodies (OPEN: the bench resolves them), with their resolutions."""
    from app import demo

    out = []
    for inc in demo.build(demo.load_rows()).incidents[:limit]:
        body = json.loads(inc.model_dump_json(exclude_none=True))
        body.update(status="OPEN", name=None)
        body.pop("resolved_at", None)
        body.pop("name", None)
        out.append(body)
    return out


async def resolve_and_follow(http: httpx.AsyncClient, incident: dict, resolution: str) -> tuple[float, dict]:
    started = time.perf_counter()
    r = await http.post(f"{INCIDENTS}{incident['name']}/resolve/",
                        json={"resolution": resolution or "Resolved", "root_cause": incident.get("root_cause") or None})
    r.raise_for_status()
    listed = (await http.get(GENERATIONS, params={"incident": incident["id"]})).json()["results"]
    gen_id = listed[0]["id"]
    async with http.stream("GET", f"{GENERATIONS}{gen_id}/events/") as resp:
        event = None
        async for line in resp.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "end":
                break
    elapsed = time.perf_counter() - started
    return elapsed, (await http.get(f"{GENERATIONS}{gen_id}/")).json()


async def run(args) -> None:
    token = await make_token()
    rows = bodies(args.incidents + args.burst)
    headers = {"Authorization": f"Token {token}"}
    with api_server() as base:
        worker = subprocess.Popen([sys.executable, "-m", "dramatiq", "app.worker", "--processes", "1", "--threads", "2"],
                                  cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
                created = []
                for body in rows:
                    r = await http.post(INCIDENTS, json=body)
                    r.raise_for_status()
                    created.append((r.json(), body.get("resolution") or ""))
                sequential, logs = [], []
                for inc, resolution in created[:args.incidents]:
                    elapsed, log = await resolve_and_follow(http, inc, resolution)
                    sequential.append(elapsed * 1000)
                    logs.append(log)
                burst = created[args.incidents:]
                t0 = time.perf_counter()
                results = await asyncio.gather(*(resolve_and_follow(http, inc, res) for inc, res in burst))
                burst_s = time.perf_counter() - t0
        finally:
            worker.terminate()
            worker.wait(timeout=15)

    statuses = Counter(log["status"] for log in logs)
    print(f"incidents resolved one at a time: {len(logs)}; statuses {dict(statuses)}")
    print(f"resolve call -> finished log (SSE end): p50 {pct(sequential, .5):.0f} ms, p99 {pct(sequential, .99):.0f} ms")
    proc = [log["processing_time"] * 1000 for log in logs if log["processing_time"] is not None]
    gen = [log["evidence"].get("generation_ms", 0) for log in logs]
    print(f"worker processing_time: p50 {pct(proc, .5):.0f} ms, p99 {pct(proc, .99):.0f} ms; "
          f"drafting inside it (similar incidents, articles, draft, check, write): "
          f"p50 {pct(gen, .5):.1f} ms, p99 {pct(gen, .99):.1f} ms")
    sections = [len(log["generated_sections"]) for log in logs]
    print(f"sections written: mean {statistics.mean(sections):.2f} of 6; confidence p10/p50/p90 "
          f"{pct([log['confidence_score'] or 0 for log in logs], .1):.2f}/"
          f"{pct([log['confidence_score'] or 0 for log in logs], .5):.2f}/"
          f"{pct([log['confidence_score'] or 0 for log in logs], .9):.2f}")
    similar = [len(log["evidence"].get("similar_incidents") or []) for log in logs]
    print(f"similar incidents used per draft: mean {statistics.mean(similar):.2f}; drafts citing an earlier "
          f"postmortem: {sum(1 for log in logs if log['evidence'].get('similar_postmortems'))}")
    if results:
        done = Counter(log["status"] for _, log in results)
        burst_ms = [e * 1000 for e, _ in results]
        print(f"burst of {len(results)} resolutions at once: all finished in {burst_s:.1f} s "
              f"({len(results) / burst_s:.1f} per s, one worker); resolve -> finished p50 {pct(burst_ms, .5):.0f} ms, "
              f"max {max(burst_ms):.0f} ms; statuses {dict(done)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=150)
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args()
    with local_stack("ikl_bench_generations", IKL_POSTMORTEM_AUTO_SEVERITIES='["LOW","MEDIUM","HIGH","CRITICAL"]',
                     IKL_POSTMORTEM_GENERATION_SWEEP_INTERVAL="1", IKL_LIVE_KEEPALIVE_SECONDS="5",
                     IKL_RATE_LIMIT_WRITE="0", IKL_RATE_LIMIT_READ="0",  # 0: the bench measures work, not limits
                     IKL_LIVE_MAX_STREAMS_PER_USER="1000"):
        asyncio.run(run(args))


if __name__ == "__main__":
    main()

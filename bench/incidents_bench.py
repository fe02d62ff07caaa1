"""Benchmark: the timeline GET and the incident list GET through the API, against the same reads
done directly with PyMongo, at a fixed concurrency. Prints requests/s, p50/p99, the CPU per read of the API
and of raw PyMongo (each one process) and the ratios, by throughput and by CPU: the medians of --rounds runs of
each, alternated (this VM's speed drifts by ±20 % from one run to the next), with each round's own ratio beside.

    .venv/bin/python bench/incidents_bench.py [--concurrency 32] [--seconds 10] [--incidents 2000] [--rounds 3]

It starts its own local stack in a temporary folder, the API under uvicorn (uvloop + httptools,
one worker) and drives it with wrk from a separate process (apt-get install wrk). The PyMongo
baseline runs in its own process with the same concurrency: for the list, the same count and page as the
API, and the page alone (the API shares one count among concurrent requests for one list and reuses a
large one for 5 s or more, app/listing.py; raw PyMongo counts on every request). For the list also a bare
Starlette route under the same uvicorn serving the same page as JSON (BARE_APP): the ceiling of any API on this
stack, against which the API's own work (authentication, rate limit, metrics, checks, envelope) shows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

# harness puts the project on sys.path
from harness import api_pid, api_server, cpu_seconds, local_stack, wait_ready  # noqa: I001
from app.stack import free_port

LIST_PATH = "/api/v1/incidents/?status=RESOLVED&ordering=-created_at"
EVENTS_PER_INCIDENT = 12


async def seed(n: int) -> tuple[str, str]:
    """n incidents with timelines; returns (a token, one incident name)."""
    from app.backends import connect
    from app.db import ensure_indexes
    from app.settings import get_settings
    from app.timefmt import utcnow
    from app.users import service as users
    from app.users.models import Role, UserCreate

    bk = connect(get_settings(), jobs=True)
    await ensure_indexes(bk)
    user = await users.create_user(bk, data=UserCreate(username="bench", role=Role.ADMIN))
    token = await users.issue_token(bk, user=user)
    now = utcnow()

    def doc(i: int) -> dict:
        return {"_id": f"bench-{i}", "name": f"INC-20260101-{i:04d}", "namespace": "production",
                "title": f"Bench incident {i}", "description": "x" * 200, "severity": "HIGH", "severity_rank": 3,
                "status": "RESOLVED" if i % 2 else "OPEN", "category": "Database", "affected_services": ["db"],
                "affected_teams": [], "tags": ["bench"], "root_cause": "pool exhausted", "resolution": "restart",
                "assignee": None, "reporter": "bench", "detected_at": now, "resolved_at": now, "created_at": now,
                "updated_at": now, "data_classification": "INTERNAL",
                "timeline": [{"id": f"e{j}", "timestamp": now, "type": "Analysis", "source": "bench",
                              "message": f"event {j}", "details": {"step": j}} for j in range(EVENTS_PER_INCIDENT)]}

    for start in range(0, n, 10_000):  # made a batch at a time: a million at once would not fit in memory
        await bk.mongo.incidents.insert_many([doc(i) for i in range(start, min(n, start + 10_000))])
    await bk.close()
    return token, doc(n // 2)["name"]


WRK_LUA = """
done = function(summary, latency, requests)
  io.write(string.format("JSON{\\"requests\\":%d,\\"seconds\\":%f,\\"p50\\":%f,\\"p99\\":%f,\\"errors\\":%d}\\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def run_wrk(url: str, token: str, concurrency: int, seconds: int, lua: Path) -> dict:
    out = subprocess.run(["wrk", "-t", "2", "-c", str(concurrency), "-d", f"{seconds}s", "-s", str(lua),
                          "-H", f"Authorization: Token {token}", url], capture_output=True, text=True, check=True).stdout
    data = json.loads(re.search(r"JSON(\{.*\})", out).group(1))
    return {"rps": data["requests"] / data["seconds"], "p50_ms": data["p50"], "p99_ms": data["p99"],
            "errors": data["errors"]}


# The query the service runs for LIST_PATH (app/listing.py): the reader's classifications, the filter, the default
# ordering with its _id tie-breaker, read from the index the filter leads. Both baseline scripts start with it.
PAGE_QUERY = r"""
FLT = {"$and": [{"data_classification": {"$in": ["PUBLIC", "INTERNAL", "CONFIDENTIAL", "RESTRICTED"]}},
                {"$and": [{"status": "RESOLVED"}]}]}
HINT = [("status", 1), ("data_classification", 1), ("created_at", 1), ("_id", 1)]
SORT = [("created_at", -1), ("_id", -1)]
"""

DIRECT = PAGE_QUERY + r"""
import asyncio, json, sys, time
from pymongo import AsyncMongoClient
url, db, kind, name, conc, secs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
async def main():
    client = AsyncMongoClient(url, tz_aware=True)
    coll = client[db].incidents
    async def once():
        if kind == "timeline":
            await coll.find_one({"name": name}, {"name": 1, "namespace": 1, "timeline": 1})
        else:
            if kind == "list":  # "page": the page alone (the API shares one count among concurrent requests)
                await coll.count_documents(FLT, hint=HINT)
            await coll.find(FLT, {"timeline": 0}, hint=HINT).sort(SORT).limit(20).to_list(None)
    lat = []
    stop = time.perf_counter() + secs
    async def loop():
        while time.perf_counter() < stop:
            t = time.perf_counter(); await once(); lat.append(time.perf_counter() - t)
    for _ in range(5): await once()
    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(loop() for _ in range(conc)))
    el, cpu = time.perf_counter() - t0, time.process_time() - c0
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] * 1000 if lat else float("nan")
    print(json.dumps({"rps": len(lat) / el, "p50_ms": pct(0.5), "p99_ms": pct(0.99), "errors": 0,
                      "cpu_ms": 1000 * cpu / max(len(lat), 1)}))
asyncio.run(main())
"""


# The stack's own ceiling: one Starlette route under the same uvicorn (uvloop, httptools) that runs the list's page
# query (PAGE_QUERY) as DIRECT does and answers its documents with orjson — no authentication, rate limit, deadline,
# metrics, access log, parameter checks, canonical names or DRF envelope. What the API costs beyond it is the API's
# own work.
BARE_APP = PAGE_QUERY + r"""
import os, orjson
from pymongo import AsyncMongoClient
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
coll = None
async def page(request):
    global coll
    if coll is None:
        coll = AsyncMongoClient(os.environ["MONGODB_URL"], tz_aware=True)[os.environ["IKL_MONGODB_DB"]].incidents
    docs = await coll.find(FLT, {"timeline": 0}, hint=HINT).sort(SORT).limit(20).to_list(None)
    return Response(orjson.dumps({"results": docs}, option=orjson.OPT_UTC_Z), media_type="application/json")
app = Starlette(routes=[Route("/", page)])
"""


@contextlib.contextmanager
def bare_app(folder: Path) -> Iterator[tuple[str, int]]:
    """BARE_APP under uvicorn in its own process: (its URL, its pid)."""
    (folder / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(folder), "--port",
                             str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level",
                             "warning"])
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_ready(url, proc, time.time() + 30, path="")
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_direct(kind: str, name: str, concurrency: int, seconds: int) -> dict:
    done = subprocess.run([sys.executable, "-c", DIRECT, os.environ["MONGODB_URL"], os.environ["IKL_MONGODB_DB"], kind,
                           name, str(concurrency), str(seconds)], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the direct PyMongo {kind} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def median_of(runs: list[dict]) -> dict:
    """Each figure's median over the rounds (the VM's speed drifts by ±20 % between runs)."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--incidents", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3, help="API and PyMongo runs, alternated, per read")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    # The rate limiter stays on (its Valkey round trip is part of a request's cost) with a limit
    # the run cannot reach.
    with local_stack("ikl_bench", IKL_RATE_LIMIT_READ=str(10**9)):
        token, name = asyncio.run(seed(args.incidents))
        with api_server(ready_timeout=60 + args.incidents / 100) as base, tempfile.TemporaryDirectory() as tmp, \
                bare_app(Path(tmp)) as (bare_url, bare_pid):
            lua = Path(tmp) / "report.lua"
            lua.write_text(WRK_LUA)
            rows = []
            pid = api_pid(int(base.rsplit(":", 1)[1]))

            def served(url: str, process: int) -> dict:
                """wrk on `url`, with the CPU per request of the process serving it."""
                cpu0 = cpu_seconds(process)
                res = run_wrk(url, token, args.concurrency, args.seconds, lua)
                res["cpu_ms"] = 1000 * (cpu_seconds(process) - cpu0) / max(res["rps"] * args.seconds, 1)
                return res

            for label, path, kind in (("timeline GET", f"/api/v1/incidents/{name}/timeline", "timeline"),
                                      ("incident list GET (page of 20)", LIST_PATH, "list")):
                # the list's other baselines: the page alone (the API shares one count among concurrent requests,
                # app/listing.py), and the page served by a bare Starlette route (BARE_APP)
                directs = [("PyMongo", lambda: run_direct(kind, name, args.concurrency, args.seconds))]
                if kind == "list":
                    directs += [("page only", lambda: run_direct("page", name, args.concurrency, args.seconds)),
                                ("bare app", lambda: served(bare_url, bare_pid))]
                    run_wrk(bare_url, token, args.concurrency, 2, lua)  # warm-up
                api_runs: list[dict] = []
                direct_runs: dict[str, list[dict]] = {what: [] for what, _ in directs}
                run_wrk(base + path, token, args.concurrency, 2, lua)  # warm-up
                for _ in range(args.rounds):  # alternated, so that a drift of the machine's speed hits both
                    api_runs.append(served(base + path, pid))
                    for what, run in directs:
                        direct_runs[what].append(run())
                rows.append((label, api_runs, direct_runs))
    print(f"\n{args.incidents} incidents x {EVENTS_PER_INCIDENT} events, concurrency {args.concurrency}, "
          f"{args.seconds}s per run, {args.rounds} alternated rounds (medians), 1 uvicorn worker (uvloop, httptools), "
          f"wrk -t2\n")
    print(f"{'read':32} {'':9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU ms/req':>11}")
    for label, api_runs, direct_runs in rows:
        a = median_of(api_runs)
        print(f"{label:32} {'API':9} {a['rps']:9.0f} {a['p50_ms']:8.2f} {a['p99_ms']:8.2f} {int(a['errors']):7d} "
              f"{a['cpu_ms']:11.3f}")
        for what, runs in direct_runs.items():
            d = median_of(runs)
            each = [x["rps"] / y["rps"] for x, y in zip(api_runs, runs) if y["rps"]]
            print(f"{'':32} {what:9} {d['rps']:9.1f} {d['p50_ms']:8.2f} {d['p99_ms']:8.2f} {'':7} {d['cpu_ms']:11.3f}")
            # req/s ratio, and the same by CPU: raw PyMongo's CPU per read over the API's (each one process; the
            # throughput on this shared 2-core VM also carries wrk's and MongoDB's share of the cores)
            print(f"{'':32} {'ratio':9} {a['rps'] / d['rps'] if d['rps'] else float('inf'):9.2f}   "
                  f"(each round: {', '.join(f'{r:.2f}' for r in each)}); by CPU per read "
                  f"{d['cpu_ms'] / a['cpu_ms'] if a['cpu_ms'] else float('inf'):.2f}")
        if {"page only", "bare app"} <= set(direct_runs):  # the stack's ceiling: what any API on it could reach
            page, bare = median_of(direct_runs["page only"]), median_of(direct_runs["bare app"])
            print(f"{'':32} {'bare app / page only':20} {bare['rps'] / page['rps']:.2f}; by CPU per read "
                  f"{page['cpu_ms'] / bare['cpu_ms']:.2f}")


if __name__ == "__main__":
    main()

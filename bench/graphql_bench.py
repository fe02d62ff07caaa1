"""Benchmark: a page of 20 incidents through GraphQL (every field the REST list answers; then with each
incident's timeline too) against the same page through REST, at a fixed concurrency, with the API process's CPU time per request for both.

    .venv/bin/python bench/graphql_bench.py [--concurrency 32] [--seconds 10] [--incidents 2000] [--rounds 3]

Starts its own local stack and the API under uvicorn (uvloop + httptools, one worker), seeds incidents with
12 events each (bench/incidents_bench.py's seed) and drives both with wrk (apt-get install wrk). Prints
requests/s, p50/p99, API CPU ms per request and the GraphQL/REST ratio (the goal: at least 0.5): the medians
of --rounds runs of each read, alternated (this VM's speed drifts by ±20 % from one run to the next), with each
round's ratio beside.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import api_pid, api_server, cpu_seconds, local_stack  # noqa: I001 - puts the project on sys.path
from incidents_bench import WRK_LUA, median_of, seed

REST_PATH = "/api/v1/incidents/?page_size=20"
QUERY = """{ incidents(pageSize: 20) { totalCount results { id name namespace title description severity status
  category affectedServices affectedTeams assignee reporter tags rootCause resolution detectedAt resolvedAt
  createdAt updatedAt dataClassification } } }"""
# the same with each incident's timeline (the REST list leaves timelines out)
QUERY_WITH_TIMELINES = QUERY.replace("dataClassification }", "dataClassification timeline(limit: 50) "
                                                              "{ id type source message timestamp severity } }")


def run_wrk(url: str, token: str, concurrency: int, seconds: int, lua: Path, pid: int) -> dict:
    before = cpu_seconds(pid)
    out = subprocess.run(["wrk", "-t", "2", "-c", str(concurrency), "-d", f"{seconds}s", "-s", str(lua),
                          "-H", f"Authorization: Token {token}", url], capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(pid) - before
    data = json.loads(re.search(r"JSON(\{.*\})", out).group(1))
    return {"rps": data["requests"] / data["seconds"], "p50_ms": data["p50"], "p99_ms": data["p99"],
            "errors": data["errors"], "cpu_ms": used * 1000 / max(data["requests"], 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--incidents", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3, help="runs of each read, alternated")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    def graphql_lua(query: str) -> str:
        return ('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = {json.dumps(json.dumps({'query': query}))}\n" + WRK_LUA)

    with local_stack("ikl_bench_graphql", IKL_RATE_LIMIT_READ=str(10**9), IKL_RATE_LIMIT_WRITE=str(10**9)):
        token, _ = asyncio.run(seed(args.incidents))
        with api_server(ready_timeout=60 + args.incidents / 100) as base, tempfile.TemporaryDirectory() as tmp:
            pid = api_pid(int(base.rsplit(":", 1)[1]))
            rest_lua, gql_lua, full_lua = (Path(tmp) / n for n in ("rest.lua", "graphql.lua", "full.lua"))
            rest_lua.write_text(WRK_LUA)
            gql_lua.write_text(graphql_lua(QUERY))
            full_lua.write_text(graphql_lua(QUERY_WITH_TIMELINES))
            reads = (("REST page of 20", base + REST_PATH, rest_lua),
                     ("GraphQL page of 20", base + "/graphql", gql_lua),
                     ("GraphQL + timelines", base + "/graphql", full_lua))
            for _, url, lua in reads:
                run_wrk(url, token, args.concurrency, 2, lua, pid)  # warm-up
            runs: dict[str, list[dict]] = {label: [] for label, _, _ in reads}
            for _ in range(args.rounds):  # alternated, so that a drift of the machine's speed hits every read
                for label, url, lua in reads:
                    runs[label].append(run_wrk(url, token, args.concurrency, args.seconds, lua, pid))
    print(f"\n{args.incidents} incidents x 12 events, concurrency {args.concurrency}, {args.seconds}s per run, "
          f"{args.rounds} alternated rounds (medians), 1 uvicorn worker (uvloop, httptools), wrk -t2\n")
    print(f"{'read':22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11} {'errors':>7}")
    for label, rounds in runs.items():
        r = median_of(rounds)
        print(f"{label:22} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['cpu_ms']:11.2f} {int(r['errors']):7d}")
    rest, gql = runs["REST page of 20"], runs["GraphQL page of 20"]
    each = [g["rps"] / r["rps"] for g, r in zip(gql, rest)]
    print(f"{'GraphQL / REST':22} {median_of(gql)['rps'] / median_of(rest)['rps']:9.2f}   "
          f"(each round: {', '.join(f'{x:.2f}' for x in each)}; CPU per request REST / GraphQL: "
          f"{median_of(rest)['cpu_ms'] / median_of(gql)['cpu_ms']:.2f})")


if __name__ == "__main__":
    main()

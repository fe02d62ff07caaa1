"""Benchmark: hostile GraphQL documents against a real API process. For each document, the time
until it is rejected and the /healthz latency measured meanwhile from another connection; beside
it, graphql-core's own validation of the same document in this process (the raw backend).

    .venv/bin/python bench/graphql_limits_bench.py [--repeat 20]

Documents: fragment fan-out (each fragment spreads the next twice) 20 and 30 levels deep; 30 aliases
of a 100-incident page with timelines; 450 copies of one unaliased field.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from harness import api_server, local_stack  # noqa: I001 - puts the project on sys.path


def fan_out(levels: int) -> str:
    frags = [f"fragment F{i} on Incident {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    frags.append(f"fragment F{levels} on Incident {{ id }}")
    return '{ incident(name: "x") { ...F0 } } ' + " ".join(frags)


DOCUMENTS = {
    "fan-out 20 levels": fan_out(20),
    "fan-out 30 levels": fan_out(30),
    "30 aliases x page of 100 with timelines": "{ " + " ".join(
        f"a{i}: incidents(pageSize: 100) {{ results {{ timeline {{ type message }} }} }}" for i in range(30)) + " }",
    "450 unaliased copies": "{ " + "__typename " * 450 + "}",
}


async def token() -> str:
    from app.backends import connect
    from app.db import ensure_indexes
    from app.settings import get_settings
    from app.users import service as users
    from app.users.models import Role, UserCreate

    bk = connect(get_settings(), jobs=True)
    await ensure_indexes(bk)
    user = await users.ensure_user(bk, data=UserCreate(username="bench", role=Role.ADMIN))
    key = await users.issue_token(bk, user=user)
    await bk.close()
    return key


def core_validation_ms(doc: str) -> float:
    from graphql import parse, validate

    from schema.schema import schema

    started = time.perf_counter()
    validate(schema._schema, parse(doc))
    return (time.perf_counter() - started) * 1000


async def measure(base: str, key: str, doc: str, repeat: int) -> tuple[list[float], list[float], int, str]:
    import httpx

    rejections, health = [], []
    status, code = 0, ""
    async with httpx.AsyncClient(base_url=base, timeout=600) as c, httpx.AsyncClient(base_url=base, timeout=600) as h:
        for _ in range(repeat):
            async def hostile():
                started = time.perf_counter()
                r = await c.post("/graphql", headers={"Authorization": f"Token {key}"}, json={"query": doc})
                return (time.perf_counter() - started) * 1000, r

            task = asyncio.create_task(hostile())
            started = time.perf_counter()
            await h.get("/healthz")
            health.append((time.perf_counter() - started) * 1000)
            elapsed, r = await task
            rejections.append(elapsed)
            status = r.status_code
            code = r.json()["errors"][0]["extensions"]["code"] if r.status_code != 200 else "-"
    return rejections, health, status, code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with local_stack("ikl_bench_limits", IKL_RATE_LIMIT_READ="0"):
        key = asyncio.run(token())
        with api_server() as base:
            print("| document | bytes | status / code | rejected in p50 ms | max ms | /healthz meanwhile p50 ms | max ms "
                  "| graphql-core validate ms |")
            print("| --- | --- | --- | --- | --- | --- | --- | --- |")
            for name, doc in DOCUMENTS.items():
                rejections, health, status, code = asyncio.run(measure(base, key, doc, args.repeat))
                core = core_validation_ms(doc) if "fan-out" in name else float("nan")
                print(f"| {name} | {len(doc)} | {status} {code} | {statistics.median(rejections):.2f} | "
                      f"{max(rejections):.2f} | {statistics.median(health):.2f} | {max(health):.2f} | {core:.2f} |")


if __name__ == "__main__":
    main()

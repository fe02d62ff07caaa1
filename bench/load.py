"""Load: mixed reads and writes across every domain against 2 API processes and 2 workers, then every
acknowledged write looked for in MongoDB.

    .venv/bin/python bench/load.py [--seconds 60] [--clients 64] [--api 2] [--workers 2] [--warmup 5]

It starts its own local stack (bench/harness.py), loads the demo data `dev.py run` loads (the 200 incidents of
../shared/datasets/public-incidents.jsonl with their articles, postmortems, recommendations and learning
patterns; the built-in rows when the file is missing), then runs `--api` API processes and `--workers`
Dramatiq workers as `dev.py run --api-processes N --workers M` does (bench/harness.py `processes`). Each of
`--clients` clients keeps one connection to one API process (client i to process i mod N, as a load balancer
spreading connections would) and sends, back to back, operations drawn by weight from `OPS`: incident lists,
details, timelines and similar incidents; article lists, details and searches; postmortem and generation
lists; recommendation lists; learning-pattern lists; GraphQL pages; and writes — incidents created (REST and
GraphQL), events appended, incidents resolved, articles created and rated, postmortem generations started
(run by the workers) and recommendations generated. The per-user rate limits are raised out of the way (16
editor users share the clients): what is measured is the service, not its limiter.

Printed: requests/s in the measured window (after `--warmup` seconds), the status histogram, p50/p99 per
operation, requests per API process, CPU seconds and memory of every process; then every write acknowledged
with a 2xx (warm-up included) checked present in MongoDB — lost writes must be 0 — the generations the load
started followed to their end, and the search index's backlog drained.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from harness import local_stack, processes  # noqa: I001 - puts the project on sys.path

import aiohttp  # noqa: E402

INCIDENTS = "/api/v1/incidents/"
ARTICLES = "/api/knowledge/knowledge-articles/"
POSTMORTEMS = "/api/knowledge/postmortems/"
GENERATIONS = "/api/knowledge/postmortem-generations/"
RECOMMENDATIONS = "/api/knowledge/recommendations/"
PATTERNS = "/api/knowledge/learning-patterns/"
USERS = 16
WORDS = ("database connection timeout", "certificate expired", "dns resolution failure", "memory leak",
         "disk full", "deploy rollback", "rate limiting", "cache stampede", "replication lag", "bgp route leak",
         "configuration change", "load balancer health check")
GQL_INCIDENTS = ("query($p: Int!) { incidents(status: [RESOLVED, CLOSED], pageSize: 10, page: $p) { totalCount "
                 "results { name title severity status detectedAt affectedServices timeline(limit: 3) "
                 "{ type message } } } }")
GQL_OVERVIEW = ("{ learningPatterns(pageSize: 5) { totalCount results { id name patternType confidenceScore } } "
                "postmortems(pageSize: 5) { totalCount results { id title status } } "
                "knowledgeArticles(pageSize: 5) { totalCount results { slug title } } }")
GQL_CREATE = ("mutation($input: CreateIncidentInput!) { createIncident(input: $input) { __typename "
              "... on Incident { id name } } }")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


@dataclass
class World:
    """What the operations draw on and what the writes acknowledged."""

    users: list[dict]                       # {"id", "headers"}
    incidents: list[str]                    # seeded incident names
    incident_ids: list[str]
    slugs: list[str]
    postmortems: list[str]
    fresh: list[dict] = field(default_factory=list)   # incidents this load created, each used by one write
    acked: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    results: list[tuple] = field(default_factory=list)  # (done_at, op, status, ms, process)


class Client:
    def __init__(self, i: int, base: str, process: int, world: World, session: aiohttp.ClientSession) -> None:
        self.i, self.base, self.process, self.world, self.session = i, base, process, world, session
        self.user = world.users[i % len(world.users)]
        self.rng = random.Random(i)

    async def call(self, op: str, method: str, path: str, body=None, params=None):
        """One request; (status, JSON body or None)."""
        started = time.perf_counter()
        try:
            async with self.session.request(method, self.base + path, json=body, params=params,
                                            headers=self.user["headers"]) as resp:
                data = await resp.read()
                status = resp.status
        except Exception as exc:  # noqa: BLE001 - counted as its own status
            status, data = f"error:{type(exc).__name__}", b""
        ms = (time.perf_counter() - started) * 1000
        self.world.results.append((time.monotonic(), op, status, ms, self.process))
        if isinstance(status, int) and 200 <= status < 300 and data:
            try:
                return status, json.loads(data)
            except ValueError:
                return status, None
        return status, None

    def ok(self, status) -> bool:
        return isinstance(status, int) and 200 <= status < 300

    def fresh(self) -> dict | None:
        return self.world.fresh.pop(self.rng.randrange(len(self.world.fresh))) if self.world.fresh else None

    # --- reads ---------------------------------------------------------------------------------------------

    async def incident_list(self):
        await self.call("incident.list", "GET", INCIDENTS, params={
            "status": "RESOLVED,CLOSED", "ordering": self.rng.choice(["-detected_at", "-created_at", "severity"]),
            "page": str(self.rng.randint(1, 5)), "page_size": "20"})

    async def incident_detail(self):
        await self.call("incident.detail", "GET", f"{INCIDENTS}{self.rng.choice(self.world.incidents)}/")

    async def incident_timeline(self):
        await self.call("incident.timeline", "GET", f"{INCIDENTS}{self.rng.choice(self.world.incidents)}/timeline/")

    async def incident_similar(self):
        await self.call("incident.similar", "GET", f"{INCIDENTS}{self.rng.choice(self.world.incidents)}/similar/",
                        params={"limit": "5"})

    async def article_list(self):
        await self.call("article.list", "GET", ARTICLES, params={"page": str(self.rng.randint(1, 5)),
                                                                 "page_size": "20"})

    async def article_detail(self):
        await self.call("article.detail", "GET", f"{ARTICLES}{self.rng.choice(self.world.slugs)}/")

    async def article_search(self):
        await self.call("article.search", "POST", f"{ARTICLES}search/", {"query": self.rng.choice(WORDS),
                                                                          "limit": 10})

    async def postmortem_list(self):
        await self.call("postmortem.list", "GET", POSTMORTEMS, params={"page_size": "20"})

    async def postmortem_detail(self):
        await self.call("postmortem.detail", "GET", f"{POSTMORTEMS}{self.rng.choice(self.world.postmortems)}/")

    async def generation_list(self):
        await self.call("generation.list", "GET", GENERATIONS, params={"page_size": "20"})

    async def recommendation_list(self):
        await self.call("recommendation.list", "GET", RECOMMENDATIONS,
                        params={"incident": self.rng.choice(self.world.incident_ids)})

    async def pattern_list(self):
        await self.call("pattern.list", "GET", PATTERNS, params={"page_size": "20"})

    async def graphql_incidents(self):
        await self.call("graphql.incidents", "POST", "/graphql", {"query": GQL_INCIDENTS,
                                                                  "variables": {"p": self.rng.randint(1, 5)}})

    async def graphql_overview(self):
        await self.call("graphql.overview", "POST", "/graphql", {"query": GQL_OVERVIEW})

    # --- writes (each acknowledged one is looked for in MongoDB afterwards) -----------------------------------

    def _incident_body(self) -> dict:
        return {"title": f"Load {uuid.uuid4().hex[:10]}: {self.rng.choice(WORDS)} on checkout",
                "severity": self.rng.choice(["LOW", "MEDIUM"]), "namespace": "load", "category": "Load",
                "affected_services": [self.rng.choice(["checkout", "payments", "search"])],
                "timeline": [{"type": "Detection", "source": "load", "message": "Error rate above threshold"}]}

    async def incident_create(self):
        status, body = await self.call("incident.create", "POST", INCIDENTS, self._incident_body())
        if self.ok(status) and body:
            self.world.acked["incident"].append(body["id"])
            self.world.fresh.append({"id": body["id"], "name": body["name"]})

    async def graphql_create(self):
        b = self._incident_body()
        variables = {"input": {"title": b["title"], "severity": b["severity"], "namespace": "load",
                               "category": "Load", "affectedServices": b["affected_services"]}}
        status, body = await self.call("graphql.createIncident", "POST", "/graphql", {"query": GQL_CREATE,
                                                                                       "variables": variables})
        made = ((body or {}).get("data") or {}).get("createIncident") or {}
        if self.ok(status) and made.get("id"):
            self.world.acked["incident"].append(made["id"])
            self.world.fresh.append({"id": made["id"], "name": made["name"]})

    async def incident_event(self):
        name = self.rng.choice(self.world.incidents)
        marker = f"load event {uuid.uuid4().hex}"
        status, _ = await self.call("incident.event", "POST", f"{INCIDENTS}{name}/events/", {
            "type": self.rng.choice(["Analysis", "Notification"]), "source": "load", "message": marker})
        if self.ok(status):
            self.world.acked["event"].append((name, marker))

    async def incident_resolve(self):
        if (inc := self.fresh()) is None:
            return await self.incident_create()
        status, _ = await self.call("incident.resolve", "POST", f"{INCIDENTS}{inc['name']}/resolve/",
                                    {"resolution": "Rolled back the change", "root_cause": "A bad configuration push"})
        if self.ok(status):
            self.world.acked["resolved"].append(inc["id"])

    async def article_create(self):
        tag = uuid.uuid4().hex[:10]
        status, body = await self.call("article.create", "POST", ARTICLES, {
            "title": f"Load runbook {tag}", "article_type": "RUNBOOK", "category": "Load",
            "content": f"When {self.rng.choice(WORDS)} hits checkout ({tag}): check the dashboards, then roll back."})
        if self.ok(status) and body:
            self.world.acked["article"].append(body["id"])

    async def article_rate(self):
        slug, rating = self.rng.choice(self.world.slugs), self.rng.randint(1, 5)
        status, _ = await self.call("article.rate", "POST", f"{ARTICLES}{slug}/rate/", {"rating": rating})
        if self.ok(status):
            self.world.acked["rating"].append((slug, self.user["id"]))

    async def generation_start(self):
        if (inc := self.fresh()) is None:
            return await self.incident_create()
        status, body = await self.call("generation.start", "POST", f"{GENERATIONS}generate_postmortem/",
                                       {"incident_id": inc["id"]})
        if self.ok(status) and body:
            self.world.acked["generation"].append(body["generation_id"])

    async def recommendation_generate(self):
        if (inc := self.fresh()) is None:
            return await self.incident_create()
        status, body = await self.call("recommendation.generate", "POST", f"{RECOMMENDATIONS}generate_for_incident/",
                                       {"incident_id": inc["id"], "max_recommendations": 5})
        if self.ok(status) and body:
            self.world.acked["recommendation"] += [r["id"] for r in body["recommendations"]]


# operation -> weight (reads 59, writes 19 of 78: about a quarter of the requests write)
OPS = {
    Client.incident_list: 8, Client.incident_detail: 5, Client.incident_timeline: 8, Client.incident_similar: 2,
    Client.article_list: 4, Client.article_detail: 3, Client.article_search: 6,
    Client.postmortem_list: 4, Client.postmortem_detail: 2, Client.generation_list: 2,
    Client.recommendation_list: 3, Client.pattern_list: 4,
    Client.graphql_incidents: 5, Client.graphql_overview: 3,
    Client.incident_create: 4, Client.graphql_create: 2, Client.incident_event: 4, Client.incident_resolve: 2,
    Client.article_create: 2, Client.article_rate: 2, Client.generation_start: 2, Client.recommendation_generate: 1,
}


async def seed() -> World:
    """The demo data, and USERS editor users (each with a token) to send the load as."""
    from app.backends import connect
    from app.cli import _seed
    from app.main import prepare
    from app.settings import get_settings
    from app.users import service as users
    from app.users.models import Classification, Role, UserCreate

    bk = connect(get_settings(), jobs=True)
    started = time.perf_counter()
    n_incidents, n_articles = await _seed(bk, None)
    await prepare(bk)
    people = []
    for i in range(USERS):
        user = await users.create_user(bk, data=UserCreate(username=f"load-{i}", role=Role.EDITOR,
                                                           clearance=Classification.RESTRICTED))
        people.append({"id": user.id, "headers": {"Authorization": f"Token {await users.issue_token(bk, user=user)}"}})
    incidents = await bk.mongo.incidents.find({}, {"name": 1}).to_list(None)
    slugs = [a["slug"] for a in await bk.mongo.articles.find({"status": "PUBLISHED"}, {"slug": 1}).to_list(None)]
    pms = [p["_id"] for p in await bk.mongo.postmortems.find({}, {"_id": 1}).to_list(None)]
    counts = {c: await bk.mongo[c].estimated_document_count() for c in (
        "incidents", "articles", "postmortems", "recommendations", "learning_patterns")}
    await bk.close()
    print(f"seeded in {time.perf_counter() - started:.1f} s: {n_incidents} incidents, {n_articles} articles; "
          f"collections {counts}", flush=True)
    return World(users=people, incidents=[i["name"] for i in incidents], incident_ids=[i["_id"] for i in incidents],
                 slugs=slugs, postmortems=pms)


async def drive(world: World, urls: list[str], clients: int, seconds: float, warmup: float) -> tuple[float, float]:
    """Run the clients for warmup + seconds; the measured window (start, end) in time.monotonic()."""
    ops, weights = list(OPS), list(OPS.values())
    start = time.monotonic()
    window = (start + warmup, start + warmup + seconds)
    timeout = aiohttp.ClientTimeout(total=30)

    async def run(i: int) -> None:
        process = i % len(urls)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), timeout=timeout) as session:
            client = Client(i, urls[process], process, world, session)
            while time.monotonic() < window[1]:
                await client.rng.choices(ops, weights)[0](client)

    await asyncio.gather(*(run(i) for i in range(clients)))
    return window


def cpu_and_memory(leaders: dict[str, int]) -> dict[str, tuple[float, float]]:
    """name -> (CPU seconds used so far, resident MB) over each leader's whole process group (each server
    and child leads its own), except "client": this process alone."""
    tick, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
    groups: dict[int, list[tuple[float, float]]] = defaultdict(list)
    single: dict[int, tuple[float, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            use = ((int(fields[11]) + int(fields[12])) / tick, int(fields[21]) * page / 1e6)
        except (OSError, IndexError, ValueError):
            continue
        groups[int(fields[2])].append(use)
        single[int(stat.parent.name)] = use
    out = {}
    for name, pid in leaders.items():
        uses = [single.get(pid, (0.0, 0.0))] if name == "client" else groups[pid]
        out[name] = (sum(c for c, _ in uses), sum(r for _, r in uses))
    return out


async def verify(world: World, generation_wait: float) -> dict:
    """Every acknowledged write, looked for in MongoDB; the generations followed to their end; the index
    sync backlog waited for."""
    from app.backends import connect
    from app.incidents.models import RESOLVED_STATUSES
    from app.settings import get_settings

    bk = connect(get_settings(), jobs=True)
    db = bk.mongo
    lost: dict[str, list] = {}

    async def missing_ids(coll: str, ids: list[str]) -> list[str]:
        found = {d["_id"] async for d in db[coll].find({"_id": {"$in": ids}}, {"_id": 1})}
        return [i for i in ids if i not in found]

    lost["incident"] = await missing_ids("incidents", world.acked["incident"])
    lost["article"] = await missing_ids("articles", world.acked["article"])
    lost["generation"] = await missing_ids("postmortem_generations", world.acked["generation"])
    lost["recommendation"] = await missing_ids("recommendations", world.acked["recommendation"])
    lost["event"] = [(n, m) for n, m in world.acked["event"]
                     if not await db.incidents.count_documents({"name": n, "timeline.message": m}, limit=1)]
    resolved = {d["_id"] async for d in db.incidents.find(
        {"_id": {"$in": world.acked["resolved"]}, "status": {"$in": sorted(RESOLVED_STATUSES)}}, {"_id": 1})}
    lost["resolved"] = [i for i in world.acked["resolved"] if i not in resolved]
    by_slug = {a["slug"]: a["_id"] async for a in db.articles.find(
        {"slug": {"$in": sorted({s for s, _ in world.acked["rating"]})}}, {"slug": 1})}
    lost["rating"] = [(s, u) for s, u in set(world.acked["rating"])
                      if not await db.article_ratings.count_documents({"article_id": by_slug.get(s), "user_id": u},
                                                                      limit=1)]
    # the generations the load started: followed to their end by the workers
    deadline = time.monotonic() + generation_wait
    while True:
        statuses = Counter([d["status"] async for d in db.postmortem_generations.find(
            {"_id": {"$in": world.acked["generation"]}}, {"status": 1})])
        if statuses["PENDING"] + statuses["PROCESSING"] == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    await bk.close()
    backlog = await settle(generation_wait)
    return {"lost": lost, "generations": dict(statuses), **backlog}


async def settle(wait: float) -> dict:
    """Wait (at most `wait` s) for the outbox to empty: index syncs and the jobs writes set off (embeddings,
    recommendation refreshes, debounced 30 s). What it held at first, by kind, how long it took, what is left."""
    from app.backends import connect
    from app.settings import get_settings

    bk = connect(get_settings(), jobs=True)

    async def by_kind() -> dict[str, int]:
        rows = await (await bk.mongo.outbox.aggregate([{"$group": {"_id": "$index", "n": {"$sum": 1}}}])).to_list(None)
        return {r["_id"]: r["n"] for r in rows}

    first, started = await by_kind(), time.monotonic()
    while await bk.mongo.outbox.count_documents({}, limit=1) and time.monotonic() - started < wait:
        await asyncio.sleep(0.5)
    left = await by_kind()
    await bk.close()
    return {"outbox_first": first, "outbox_drained_s": round(time.monotonic() - started, 1), "outbox_left": left}


def report(world: World, window: tuple[float, float], urls: list[str], usage: dict, checked: dict, args) -> None:
    inside = [r for r in world.results if window[0] <= r[0] <= window[1]]
    span = window[1] - window[0]
    print(f"\n== {args.clients} clients, {args.api} API processes, {args.workers} workers, {span:.0f} s measured "
          f"(after {args.warmup:.0f} s warm-up) ==")
    ok = sum(1 for r in inside if isinstance(r[2], int) and 200 <= r[2] < 300)
    writes = {"incident.create", "graphql.createIncident", "incident.event", "incident.resolve", "article.create",
              "article.rate", "generation.start", "recommendation.generate"}
    n_writes = sum(1 for r in inside if r[1] in writes)
    print(f"throughput: {len(inside) / span:.1f} requests/s ({ok / span:.1f} 2xx/s; writes {n_writes / span:.1f}/s, "
          f"{100 * n_writes / max(len(inside), 1):.0f} % of requests); {len(world.results)} requests in all")
    print("status histogram (window): " + ", ".join(f"{s}: {n}" for s, n in sorted(
        Counter(r[2] for r in inside).items(), key=lambda kv: str(kv[0]))))
    per_process = Counter(r[4] for r in inside)
    print("requests per API process: " + ", ".join(f"{urls[p]} {n}" for p, n in sorted(per_process.items())))
    print(f"\n{'operation':<26}{'n':>7}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}  non-2xx")
    by_op: dict[str, list] = defaultdict(list)
    for r in inside:
        by_op[r[1]].append(r)
    for op in sorted(by_op):
        rows = by_op[op]
        ms = [r[3] for r in rows]
        bad = Counter(r[2] for r in rows if not (isinstance(r[2], int) and 200 <= r[2] < 300))
        print(f"{op:<26}{len(rows):>7}{len(rows) / span:>8.1f}{statistics.median(ms):>9.1f}{pct(ms, 0.99):>9.1f}  "
              + (", ".join(f"{s}×{n}" for s, n in bad.items()) or "-"))
    all_ms = [r[3] for r in inside]
    print(f"{'all':<26}{len(inside):>7}{len(inside) / span:>8.1f}{statistics.median(all_ms):>9.1f}"
          f"{pct(all_ms, 0.99):>9.1f}")
    print("\nCPU seconds in the window / resident MB at its end (each process group):")
    for name, (cpu, rss) in usage.items():
        print(f"  {name:<12} {cpu:7.1f} s  {cpu / span * 100:5.0f} % of a core  {rss:7.0f} MB")
    acked = {k: len(v) for k, v in world.acked.items()}
    lost = {k: len(v) for k, v in checked["lost"].items()}
    print(f"\nacknowledged writes: {acked}")
    print(f"lost writes (acknowledged, not in MongoDB): {sum(lost.values())} {lost}")
    for kind, items in checked["lost"].items():
        if items:
            print(f"  {kind}: {items[:5]}")
    print(f"generations the load started: {checked['generations']}")
    print(f"outbox (index syncs and jobs) at the end of the load: {checked['outbox_first']}; "
          f"{checked['outbox_drained_s']} s later: {checked['outbox_left'] or 'empty'}")


async def main_async(args, procs, stack_pids: dict[str, int]) -> None:
    world = args.world
    ready = await settle(args.drain)  # the seeding's index syncs and embeddings done first: a steady state
    print(f"before the load, the outbox held {ready['outbox_first'] or 'nothing'}: drained in "
          f"{ready['outbox_drained_s']} s, left {ready['outbox_left'] or 'nothing'}", flush=True)
    before = cpu_and_memory(stack_pids)
    window = await drive(world, procs.urls, args.clients, args.seconds, args.warmup)
    after = cpu_and_memory(stack_pids)
    usage = {n: (after[n][0] - before[n][0], after[n][1]) for n in stack_pids}
    checked = await verify(world, args.drain)
    report(world, window, procs.urls, usage, checked, args)
    if sum(len(v) for v in checked["lost"].values()):
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds (default 60)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring (default 5)")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--api", type=int, default=2, help="API processes (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="Dramatiq workers (default 2)")
    parser.add_argument("--drain", type=float, default=120.0,
                        help="seconds to wait for started generations and the index backlog (default 120)")
    args = parser.parse_args()
    limits = {f"IKL_RATE_LIMIT_{k}": "1000000000" for k in ("READ", "WRITE", "SEARCH")}
    with local_stack("ikl_load", **limits) as stack:
        import uvloop

        args.world = uvloop.run(seed())
        logs = Path(tempfile.mkdtemp(prefix="ikl-load-logs-"))
        with processes(api=args.api, workers=args.workers, log_dir=logs) as procs:
            leaders = {f"api-{i + 1}": p.pid for i, p in enumerate(procs.api)}
            leaders |= {f"worker-{i + 1}": p.pid for i, p in enumerate(procs.workers)}
            leaders |= {name: p.pid for name, p in stack.procs.items()}
            leaders["client"] = os.getpid()
            print(f"API processes {procs.urls}, {len(procs.workers)} workers; logs in {logs}", flush=True)
            uvloop.run(main_async(args, procs, leaders))


if __name__ == "__main__":
    main()

"""Two API processes and two workers on the suite's stack, started the way an operator does
(`dev.py run --api-processes 2 --workers 2`, here the devserver pointed at the suite's servers), and what
must hold across processes:

- a rate limit is one limit: requests spread over both API processes pass exactly the limit;
- a postmortem generation and a pattern-mining run are each run once, however many workers get the job;
- live updates (SSE and the GraphQL subscription) reach followers on either API process;
- a write through one API process is searchable and similar-ranked through the other.

Each API process is reached through the port of its own the devserver announces ("API 1:", "API 2:").
Skipped, with the reason, where the machine cannot start the processes (not Linux, too little free
memory, the operating system refusing a process) or when IKL_SKIP_MULTIPROCESS is set."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from app import jobs
from app.devserver import API_PROCESSES_VAR, WORKERS_VAR
from app.incidents.similarity import RECENT_SECONDS
from app.patterns import run_records
from app.postmortems import generations
from app.users.models import Classification, Role, UserCreate
from app.users.service import create_user, issue_token
from tests.conftest import ROOT, eventually, stop, unique
from tests.test_devserver import wait_for

SEARCH_LIMIT = 20        # searches per hour in the two API processes (blocks of one: every request asks Valkey)
KEEPALIVE_SECONDS = 300  # longer than any wait here: a follower re-reads only when a change is announced
MIN_FREE_MB = 1500       # two API processes and two workers with the embedding model: about 1.2 GB
INCIDENTS = "/api/v1/incidents/"
ARTICLES = "/api/knowledge/knowledge-articles/"
GENERATIONS = "/api/knowledge/postmortem-generations/"
FINAL = ("COMPLETED", "REVIEW_REQUIRED")
EVENTS = [
    {"timestamp": "2026-01-15T10:00:00Z", "type": "Detection", "source": "monitoring.system",
     "message": "Ledger reconciliation queue above threshold"},
    {"timestamp": "2026-01-15T10:20:00Z", "type": "Analysis", "source": "jane.doe",
     "message": "Reconciliation job holds a table lock"},
    {"timestamp": "2026-01-15T10:45:00Z", "type": "Mitigation", "source": "john.doe",
     "message": "Batch split into smaller transactions"},
]


def _cannot_run() -> str | None:
    """Why this machine cannot run the processes, or None."""
    if os.environ.get("IKL_SKIP_MULTIPROCESS"):
        return "IKL_SKIP_MULTIPROCESS is set"
    if not sys.platform.startswith("linux"):
        return f"needs Linux (the devserver and its process groups); this is {sys.platform}"
    try:
        meminfo = Path("/proc/meminfo").read_text()
        free_mb = int(re.search(r"MemAvailable:\s+(\d+) kB", meminfo).group(1)) // 1024
    except (OSError, AttributeError):
        return None
    if free_mb < MIN_FREE_MB:
        return (f"needs about {MIN_FREE_MB} MB of free memory for 2 API processes and 2 workers; "
                f"{free_mb} MB available")
    return None


pytestmark = pytest.mark.skipif(_cannot_run() is not None, reason=f"multi-process test skipped: {_cannot_run()}")


@dataclass
class Cluster:
    url: str              # the port both API processes accept on
    api: list[str]        # each API process alone
    pids: dict[str, int]
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def cluster(stack, tmp_path_factory):
    """The devserver with 2 API processes and 2 workers on the suite's servers (it starts none of its own)."""
    data = tmp_path_factory.mktemp("two-by-two")
    log = data / "devserver.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), API_PROCESSES_VAR: "2", WORKERS_VAR: "2",
           "IKL_RATE_LIMIT_SEARCH": str(SEARCH_LIMIT), "IKL_LIVE_KEEPALIVE_SECONDS": str(KEEPALIVE_SECONDS),
           "IKL_PATTERN_MINING_INTERVAL_SECONDS": "0"}  # mining only when asked: no scheduled run meanwhile
    env.pop("IKL_STACK_FILE", None)
    with open(log, "wb") as out:
        try:
            dev = subprocess.Popen([sys.executable, "-m", "app.cli", "devserver", "--port", "0", "--no-seed",
                                    "--data-dir", str(data)], cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as exc:  # the operating system refused a process (limits, memory)
            pytest.skip(f"multi-process test skipped: the machine could not start the devserver: {exc}")
    try:
        banner = wait_for(lambda: "Ctrl-C stops everything" in (t := log.read_text(errors="replace")) and t,
                          "the devserver's banner", timeout=120.0, log=log)
        if dev.poll() is not None:
            raise AssertionError(f"the devserver exited\n{banner[-3000:]}")
        shared = re.search(r"^API:\s+(http://\S+)", banner, re.M).group(1)
        own = [m.group(2) for m in re.finditer(r"^API (\d+):\s+(http://\S+)", banner, re.M)]
        pids = json.loads((data / "stack.json").read_text())["pids"]
        yield Cluster(url=shared, api=own, pids=pids, log=log)
    finally:
        stop(dev, signal.SIGTERM, timeout=60)


@pytest.fixture(scope="module")
async def people(bk):
    """Users of this module alone: the limits the API processes count are per user, and the suite's
    in-process API reserves large blocks of the shared counters of the suite's own users."""
    out = {}
    for name, role, clearance in (("admin", Role.ADMIN, Classification.RESTRICTED),
                                  ("editor", Role.EDITOR, Classification.CONFIDENTIAL),
                                  ("limited", Role.EDITOR, Classification.INTERNAL)):
        user = await create_user(bk, data=UserCreate(username=unique(f"mp-{name}"), role=role, clearance=clearance))
        out[name] = {"Authorization": f"Token {await issue_token(bk, user=user)}"}
        out[name + "_user"] = user
    return out


async def _enqueue(actor: str, *args, times: int) -> list[str]:
    """Send the same job `times` times, as a redelivery or a double click would; the message ids."""
    broker = jobs.broker()
    sent = [await asyncio.to_thread(broker.enqueue, jobs.message(actor, *args)) for _ in range(times)]
    return [m.message_id for m in sent]


async def _handled(bk, queue: str, message_ids: list[str], timeout: float = 90.0) -> None:
    """Until every one of these messages was taken and acknowledged by a worker (Dramatiq's Redis broker
    keeps a message in `dramatiq:<queue>.msgs` until then)."""
    async def check():
        return not any([await bk.redis.hexists(f"dramatiq:{queue}.msgs", mid) for mid in message_ids])

    await eventually(check, timeout=timeout, interval=0.3)


def _open_files(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:  # closed meanwhile
            pass
    return out


def _dev_module():
    spec = importlib.util.spec_from_file_location("dev_entry", ROOT / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_takes_the_process_counts():
    """`dev.py run --api-processes N --workers M` hands them to the devserver; bad values are one-line errors."""
    import typer

    from app.devserver import process_counts

    dev = _dev_module()
    rest, env = dev.process_options(["--port", "0", "--api-processes", "3", "--workers=2", "--no-seed"])
    assert rest == ["--port", "0", "--no-seed"] and env == {API_PROCESSES_VAR: "3", WORKERS_VAR: "2"}
    assert process_counts(env) == (3, 2)
    assert process_counts({}) == (1, 1)  # as before
    assert process_counts({WORKERS_VAR: "0"}) == (1, 0)
    with pytest.raises(ValueError):
        dev.process_options(["--workers"])
    for bad in ({API_PROCESSES_VAR: "0"}, {WORKERS_VAR: "two"}, {API_PROCESSES_VAR: "99"}):
        with pytest.raises(typer.Exit):
            process_counts(bad)


async def test_the_devserver_runs_two_api_processes_and_two_workers(cluster):
    assert len(cluster.api) == 2 and len(set(cluster.api) | {cluster.url}) == 3
    assert {"api", "api-2", "worker", "worker-2"} <= set(cluster.pids)
    async with httpx.AsyncClient(timeout=10) as http:
        for base in (cluster.url, *cluster.api):
            assert (await http.get(f"{base}/readyz")).status_code == 200, cluster.tail()
    # both hold the one listening socket of the shared port: the kernel hands each new connection to one
    port = int(cluster.url.rsplit(":", 1)[1])
    inode = next(f[9] for f in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
                 if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port)
    for name in ("api", "api-2"):
        assert f"socket:[{inode}]" in _open_files(cluster.pids[name]), (name, inode)


async def test_a_rate_limit_holds_across_the_api_processes(cluster, people):
    """Searches alternate between the two processes: exactly the limit passes, counted once for both."""
    statuses, remaining = [], []
    async with httpx.AsyncClient(timeout=30) as http:
        for i in range(SEARCH_LIMIT + 6):
            r = await http.post(f"{cluster.api[i % 2]}{ARTICLES}search/", headers=people["limited"],
                                json={"query": "database connection timeout", "limit": 1})
            statuses.append(r.status_code)
            remaining.append(int(r.headers["x-ratelimit-remaining"]))
            if r.status_code == 429:
                assert r.json()["code"] == "RATE_LIMITED" and r.headers["x-ratelimit-limit"] == str(SEARCH_LIMIT)
    assert statuses == [200] * SEARCH_LIMIT + [429] * 6, statuses
    # what is left is the shared count, whichever process answers
    assert remaining[:SEARCH_LIMIT] == list(range(SEARCH_LIMIT - 1, -1, -1)), remaining


async def _follow_sse(base: str, headers: dict, gen_id: str, started: asyncio.Event) -> list[str]:
    seen: list[str] = []
    event = None
    async with httpx.AsyncClient(timeout=httpx.Timeout(120, connect=10)) as http:
        async with http.stream("GET", f"{base}{GENERATIONS}{gen_id}/events/", headers=headers) as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "generation":
                    seen.append(json.loads(line[5:])["status"])
                    started.set()
                elif line.startswith("data:") and event == "end":
                    return seen
    return seen


async def _follow_ws(base: str, headers: dict, gen_id: str, started: asyncio.Event) -> list[str]:
    query = "subscription Updates($id: ID!) { postmortemGenerationUpdates(id: $id) { id status } }"
    seen: list[str] = []
    async with connect(base.replace("http://", "ws://", 1) + "/graphql", subprotocols=["graphql-transport-ws"],
                       open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": headers}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 15)) == {"type": "connection_ack"}
        await ws.send(json.dumps({"type": "subscribe", "id": "g", "payload": {"query": query,
                                                                                "variables": {"id": gen_id}}}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 120))
            if msg["type"] == "complete":
                return seen
            assert msg["type"] == "next" and "errors" not in msg["payload"], msg
            seen.append(msg["payload"]["data"]["postmortemGenerationUpdates"]["status"])
            started.set()


async def test_a_generation_runs_once_and_both_processes_followers_see_it(cluster, people, bk):
    """A PENDING generation, followed over SSE and the GraphQL subscription on each API process; then its job
    is sent four times, so both workers get it: one run (one claim, one postmortem), and every follower
    hears of each change through the announcement (the keep-alive re-read is minutes away)."""
    editor = people["editor"]
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{cluster.api[0]}{INCIDENTS}", headers=editor, json={
            "title": unique("Ledger reconciliation stalled"), "severity": "MEDIUM", "timeline": EVENTS,
            "root_cause": "The reconciliation job held a table lock for the whole batch"})
        assert r.status_code == 201, r.text
        incident = r.json()
    gen, created = await generations.create(bk, incident={"_id": incident["id"]}, user=people["editor_user"],
                                            trigger="manual")  # recorded, not sent to a worker yet
    assert created and gen["status"] == "PENDING"
    followers = []
    for base in cluster.api:
        for follow in (_follow_sse, _follow_ws):
            started = asyncio.Event()
            followers.append((started, asyncio.create_task(follow(base, editor, gen["_id"], started))))
    try:
        await asyncio.wait_for(asyncio.gather(*(s.wait() for s, _ in followers)), 30)
        sent = await _enqueue("run_postmortem_generation", gen["_id"], times=4)
        seen = await asyncio.wait_for(asyncio.gather(*(t for _, t in followers)), 90)
    finally:
        for _, task in followers:
            task.cancel()
    doc = await bk.mongo.postmortem_generations.find_one({"_id": gen["_id"]})
    order = ["PENDING", "PROCESSING", *FINAL]
    for states in seen:  # SSE and WebSocket, on API process 1 and 2
        assert states[0] == "PENDING" and states[-1] == doc["status"] in FINAL, (states, cluster.tail())
        assert [order.index(s) for s in states] == sorted(order.index(s) for s in states), states
    await _handled(bk, "postmortems", sent)
    doc = await bk.mongo.postmortem_generations.find_one({"_id": gen["_id"]})
    assert doc["attempts"] == 1, doc  # claimed once: the three other deliveries found it taken or finished
    assert await bk.mongo.postmortems.count_documents({"incident": incident["id"]}) == 1
    drafted = await bk.mongo.audit_log.count_documents({"subject_type": "postmortem", "action": "generation",
                                                        "changes.generation": gen["_id"]})
    # written (and audited) unless it named facts the data does not hold; a draft below the review threshold is
    # written all the same, for review
    assert drafted == (0 if doc.get("unsupported_facts") else 1), doc
    async with httpx.AsyncClient(timeout=30) as http:  # both processes report the same finished log
        got = [(await http.get(f"{base}{GENERATIONS}{gen['_id']}/", headers=editor)).json() for base in cluster.api]
    assert got[0]["status"] == got[1]["status"] == doc["status"] and got[0]["attempts"] == got[1]["attempts"] == 1


async def test_a_mining_run_runs_once_with_two_workers(cluster, people, bk):
    """Three resolved incidents with one cause, written through both processes; a PENDING run; the
    mutation through each API process gets that run back (one at a time, across processes); its job sent
    four times: one run, one pattern per kind over these incidents, never two."""
    admin, editor = people["admin"], people["editor"]
    tag = unique("ledger").replace("-", "")
    made = []
    async with httpx.AsyncClient(timeout=30) as http:
        for i in range(3):
            r = await http.post(f"{cluster.api[i % 2]}{INCIDENTS}", headers=editor, json={
                "title": f"{tag} reconciliation stalled {i}", "severity": "MEDIUM", "status": "RESOLVED",
                "category": "Database", "affected_services": [f"{tag}-svc"],
                "root_cause": f"The {tag} reconciliation job held a table lock for the whole nightly batch",
                "resolution": f"Split the {tag} reconciliation batch into small transactions"})
            assert r.status_code == 201, r.text
            made.append(r.json()["id"])
    async def record_run():
        return await run_records.begin(bk, trigger="requested", days=30, min_frequency=3,
                                       status=run_records.RunStatus.PENDING, user=people["admin_user"])

    run, created = await record_run()  # PENDING, not sent to a worker yet
    if not created:  # another test's run is still going: wait for it to end, then record ours
        await eventually(lambda: _no_run(bk), timeout=120)
        run, created = await record_run()
    assert created
    try:
        mutation = ("mutation { startPatternMining(days: 30, minFrequency: 3) { ... on MiningStarted "
                    "{ created run { id } } } }")
        async with httpx.AsyncClient(timeout=30) as http:
            answers = await asyncio.gather(*(http.post(f"{base}/graphql", headers=admin, json={"query": mutation})
                                             for base in cluster.api))
        for r in answers:
            assert r.json()["data"]["startPatternMining"] == {"created": False, "run": {"id": run["_id"]}}, r.text
        sent = await _enqueue("mine_learning_patterns", 30, 3, run["_id"], times=4)
    except BaseException:  # never leave a PENDING run behind: it would hold off every other run for its lease
        await bk.mongo.pattern_mining_runs.update_one(
            {"_id": run["_id"], "status": "PENDING"},
            {"$set": {"status": "FAILED", "error_message": "test stopped"}, "$unset": {"running": "", "lease": ""}})
        raise

    async def finished():
        doc = await bk.mongo.pattern_mining_runs.find_one({"_id": run["_id"]})
        return doc if doc["status"] in ("COMPLETED", "FAILED") else None

    first = await eventually(finished, timeout=120, interval=0.3)
    assert first["status"] == "COMPLETED", first
    await _handled(bk, "patterns", sent, timeout=120)
    last = await bk.mongo.pattern_mining_runs.find_one({"_id": run["_id"]})
    assert (last["status"], last["completed_at"], last["updated_at"]) == (
        first["status"], first["completed_at"], first["updated_at"])  # nothing ran it again after it finished
    assert await bk.mongo.pattern_mining_runs.count_documents(  # the duplicate messages started no run of their own
        {"trigger": "requested", "started_at": {"$gte": run["started_at"]}}) == 1
    patterns = await bk.mongo.learning_patterns.find({"origin": "mined", "source_incidents": {"$in": made}},
                                                     {"pattern_type": 1, "source_incidents": 1}).to_list(None)
    kinds = [p["pattern_type"] for p in patterns]
    assert kinds and len(kinds) == len(set(kinds)), patterns  # mined, and never twice
    assert any(set(made) <= set(p["source_incidents"]) for p in patterns), patterns


async def _no_run(bk) -> bool:
    return await run_records.running(bk) is None


async def test_a_write_through_one_process_is_searchable_and_ranked_through_the_other(cluster, people, bk):
    editor = people["editor"]
    one, other = cluster.api
    tag = unique("zq").replace("-", "")
    ns = unique("mp").lower()
    async with httpx.AsyncClient(timeout=60) as http:
        # an article written through one process is found by the other's search in the very next request
        for writer, reader in ((one, other), (other, one)):
            r = await http.post(f"{writer}{ARTICLES}", headers=editor, json={
                "title": f"Rotating the {tag} certificates", "article_type": "RUNBOOK", "category": "Security",
                "content": f"How to rotate the {tag} certificates before they expire, step by step."})
            assert r.status_code == 201, r.text
            article = r.json()
            r = await http.post(f"{reader}{ARTICLES}search/", headers=editor, json={"query": f"{tag} certificates"})
            assert r.status_code == 200, r.text
            assert article["id"] in [a["id"] for a in r.json()["results"]], r.json()

        # incidents in a namespace of their own, all written through the first process
        common = {"namespace": ns, "severity": "MEDIUM", "category": "Database", "affected_services": ["ledger"]}
        bodies = {
            "target": {**common, "status": "RESOLVED", "title": f"Ledger {tag} reconciliation stalled by a table lock",
                       "root_cause": "The reconciliation job held a table lock for the whole nightly batch",
                       "resolution": "Split the batch into small transactions"},
            "decoy": {"namespace": ns, "severity": "LOW", "status": "RESOLVED", "category": "Network",
                      "affected_services": ["cdn"], "title": "Static assets failed after the CDN certificate expired",
                      "root_cause": "The TLS certificate of the CDN expired", "resolution": "Renewed the certificate"},
            "query": {**common, "title": f"Ledger {tag} reconciliation stuck waiting on a table lock",
                      "timeline": [{"type": "Detection", "source": "alerting",
                                    "message": "Reconciliation queue above threshold"}]},
        }
        made = {}
        for key, body in bodies.items():
            r = await http.post(f"{one}{INCIDENTS}", headers=editor, json=body)
            assert r.status_code == 201, r.text
            made[key] = r.json()
        written = time.monotonic()
        # the other process lists them at once
        r = await http.get(f"{other}{INCIDENTS}", headers=editor, params={"namespace": ns})
        assert {i["name"] for i in r.json()["results"]} == {m["name"] for m in made.values()}

        # Past the window in which a fresh write is taken straight from MongoDB, and once the workers have
        # embedded them: the other process finds them through the search engine and its own vector index.
        async def embedded():
            n = await bk.mongo.incidents.count_documents({"_id": {"$in": [m["id"] for m in made.values()]},
                                                          "embedded_at": {"$exists": True}})
            return n == len(made) and time.monotonic() - written > RECENT_SECONDS + 0.5

        await eventually(embedded, timeout=60, interval=0.5)

        async def ranked(base: str):
            r = await http.get(f"{base}{INCIDENTS}{made['query']['name']}/similar/", headers=editor,
                               params={"namespace": ns, "limit": 5})
            assert r.status_code == 200, r.text
            hits = r.json()["results"]
            return hits if hits and hits[0]["name"] == made["target"]["name"] else None

        hits = await eventually(lambda: ranked(other), timeout=20, interval=0.5)
        semantic = {h["name"]: next(f["value"] for f in h["matching_factors"] if f["factor"] == "semantic")
                    for h in hits}
        if made["decoy"]["name"] in semantic:
            assert semantic[made["target"]["name"]] > semantic[made["decoy"]["name"]], hits
        # and the writing process ranks them the same way
        assert [h["name"] for h in await eventually(lambda: ranked(one), timeout=20)] == [h["name"] for h in hits]


def _requests_counted(text: str, route: str) -> float:
    """http_requests_total of GET `route` answered 200, in Prometheus text."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("http_requests_total{") and f'route="{route}"' in line
               and 'method="GET"' in line and 'status="200"' in line)


async def test_metrics_from_either_process_count_both_processes_requests(cluster, people):
    """Before, /metrics answered with the figures of whichever process took the scrape: with two API
    processes about half the requests were missing from each scrape."""
    route = "/api/knowledge/kpis/"
    async with httpx.AsyncClient(timeout=30) as http:
        before = [_requests_counted((await http.get(f"{base}/metrics")).text, route) for base in cluster.api]
        assert before[0] == before[1]
        for base, times in zip(cluster.api, (3, 5)):  # 3 to the first process, 5 to the second
            for _ in range(times):
                r = await http.get(f"{base}{route}", headers=people["admin"], params={"weeks": 1})
                assert r.status_code == 200, r.text
        after = [_requests_counted((await http.get(f"{base}/metrics")).text, route) for base in cluster.api]
    assert after[0] == after[1] == before[0] + 8, (before, after)

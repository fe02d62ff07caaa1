"""/metrics beyond HTTP: jobs per actor (run by real workers, counted in Valkey), the broker's queues, the
outbox backlog and the index and embedding lag (from MongoDB, index-served), rate-limit refusals by class;
a scrape that answers when the broker or the database is down; and logs as one JSON format, carrying the
request id in a request and the job id in a job."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Route

from app import jobs
from app.backends import connect
from app.http.observability import OUTBOX_OLDEST, backlog_count, metrics
from app.indexing import outbox
from app.logs import JsonFormatter
from app.settings import get_settings
from app.stack import free_port
from app.users.models import Role, UserCreate
from app.users.service import create_user, issue_token
from tests.conftest import ROOT, eventually, stop


def samples(text: str) -> dict[tuple, float]:
    """Every sample of a Prometheus text page: (name, sorted label pairs) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(page: dict, name: str, **labels) -> float | None:
    return page.get((name, tuple(sorted(labels.items()))))


async def scrape(client) -> dict:
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


async def settled(client, check, timeout: float = 20.0):
    """Scrape until `check(page)` holds (the shared figures are read at most once a second); the page."""
    async def once():
        page = await scrape(client)
        return page if check(page) else None
    return await eventually(once, timeout=timeout, interval=0.3)


def enqueue(actor: str, *args) -> str:
    """Send a job as the API does (app/jobs.py); its message id."""
    return jobs.broker().enqueue(jobs.message(actor, *args)).message_id


def job_lines(stack, job_id: str) -> list[dict]:
    """The worker's JSON log lines written while job `job_id` ran."""
    out = []
    for line in (stack.root / "logs" / "worker.log").read_text(errors="replace").splitlines():
        if job_id in line and line.startswith("{"):
            record = json.loads(line)
            if record.get("job_id") == job_id:
                out.append(record)
    return out


def plan_stages(plan) -> list[str]:
    if isinstance(plan, dict):
        return [*([plan["stage"]] if "stage" in plan else []), *(s for v in plan.values() for s in plan_stages(v))]
    if isinstance(plan, list):
        return [s for v in plan for s in plan_stages(v)]
    return []


async def test_the_outbox_figures_are_read_from_an_index_alone(bk):
    """No collection scan, no sort, no document fetched: the oldest entry of each kind by a distinct scan of
    the (index, created_at) keys, each backlog by a count scan."""
    names = [f"explain-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    try:
        for name in names:
            for i in range(3):
                await outbox.record(bk, name, f"d{i}", delay=3600)
        explained = await bk.mongo.command("explain", {"aggregate": "outbox", "pipeline": OUTBOX_OLDEST,
                                                       "cursor": {}}, verbosity="executionStats")
        stages = plan_stages(explained)
        assert "DISTINCT_SCAN" in stages and not {"COLLSCAN", "SORT", "FETCH"} & set(stages), stages
        assert "index_1_created_at_1" in json.dumps(explained, default=str)
        counted = await bk.mongo.command("explain", backlog_count(names[0]), verbosity="executionStats")
        stages = plan_stages(counted)
        assert "COUNT_SCAN" in stages and not {"COLLSCAN", "FETCH"} & set(stages), stages
        assert counted["executionStats"]["totalDocsExamined"] == 0
    finally:
        await bk.mongo.outbox.delete_many({"index": {"$in": names}})


async def test_outbox_backlog_and_lag_move_with_pending_entries(client, bk):
    """Entries waiting (held back from the sweeps by a retry time far ahead) show as backlog, their age as the
    oldest entry's, the search index's lag and the embedding lag; gone once they are."""
    odd = f"metrics-{uuid.uuid4().hex[:8]}"  # a kind of its own: its figures are this test's alone
    doc = f"absent-{uuid.uuid4().hex[:8]}"
    try:
        for kind, doc_id in ((odd, "a"), (odd, "b"), ("incidents", doc), ("embeddings", doc)):
            await outbox.record(bk, kind, doc_id, delay=3600)
        old = outbox._now() - timedelta(seconds=600)
        await bk.mongo.outbox.update_many({"$or": [{"index": odd, "doc_id": "a"}, {"doc_id": doc}]},
                                          {"$set": {"created_at": old}})
        page = await settled(client, lambda p: value(p, "ikl_outbox_backlog", index=odd, type="index") == 2)
        assert 600 <= value(page, "ikl_outbox_oldest_age_seconds", index=odd, type="index") < 900
        assert value(page, "ikl_outbox_backlog", index="incidents", type="index") >= 1
        assert value(page, "ikl_outbox_backlog", index="embeddings", type="job") >= 1
        assert value(page, "ikl_index_lag_seconds", index="incidents") >= 600
        assert value(page, "ikl_embedding_lag_seconds", kind="embeddings") >= 600
        assert value(page, "ikl_metrics_source_up", source="mongodb") == 1
    finally:
        await bk.mongo.outbox.delete_many({"$or": [{"index": odd}, {"doc_id": doc}]})
    page = await settled(client, lambda p: value(p, "ikl_outbox_backlog", index=odd, type="index") is None)
    assert value(page, "ikl_index_lag_seconds", index="incidents") < 600  # every known index is always listed
    assert value(page, "ikl_embedding_lag_seconds", kind="article-embeddings") is not None


async def test_a_job_is_counted_with_its_duration_and_its_log_lines_carry_its_id(client, bk, stack, worker):
    """An index sync for an index nobody knows: the job succeeds (the failure stays on its outbox entry) and
    logs a warning from our code on the worker's event loop, with the job's id and actor."""
    odd = f"metrics-{uuid.uuid4().hex[:8]}"
    await outbox.record(bk, odd, "doc", delay=3600)  # only the message takes it: not due for the sweeps
    before = await scrape(client)
    try:
        job_id = await asyncio.to_thread(enqueue, "sync_document", odd, "doc")
        lines = await eventually(lambda: asyncio.to_thread(job_lines, stack, job_id), timeout=30)
    finally:
        await bk.mongo.outbox.delete_many({"index": odd})
    line = next(r for r in lines if r["logger"] == "app.indexing.outbox")
    assert line["actor"] == "sync_document" and line["level"] == "warning" and "index sync failed" in line["msg"]
    assert set(line) >= {"ts", "level", "logger", "msg", "job_id", "actor"} and "request_id" not in line

    succeeded = lambda p: value(p, "ikl_job_runs_total", actor="sync_document", outcome="succeeded") or 0  # noqa: E731
    page = await settled(client, lambda p: succeeded(p) > succeeded(before))
    count = value(page, "ikl_job_duration_seconds_count", actor="sync_document")
    assert count == succeeded(page) + value(page, "ikl_job_runs_total", actor="sync_document", outcome="failed")
    assert count > (value(before, "ikl_job_duration_seconds_count", actor="sync_document") or 0)
    assert value(page, "ikl_job_duration_seconds_bucket", actor="sync_document", le="+Inf") == count
    assert value(page, "ikl_job_duration_seconds_sum", actor="sync_document") > 0
    for actor in jobs.QUEUES:  # every actor is listed, run or not
        assert value(page, "ikl_jobs_running", actor=actor) is not None
        assert value(page, "ikl_job_retries_total", actor=actor) is not None
    for queue in set(jobs.QUEUES.values()):
        for state in ("waiting", "delayed", "dead"):
            assert value(page, "ikl_job_queue_messages", queue=queue, state=state) is not None
    assert value(page, "ikl_job_workers") >= 1
    assert value(page, "ikl_metrics_source_up", source="broker") == 1


async def test_jobs_run_side_by_side_are_counted_and_none_is_left_running(client, worker):
    """A burst on the worker's threads: every run counted once, and once they are done none counts as running
    (the threads' writes of the running count land in order)."""
    succeeded = lambda p: value(p, "ikl_job_runs_total", actor="sync_document", outcome="succeeded") or 0  # noqa: E731
    before = succeeded(await scrape(client))
    for _ in range(20):  # documents nobody wrote: nothing to sync, each run is short
        await asyncio.to_thread(enqueue, "sync_document", "incidents", f"absent-{uuid.uuid4().hex[:8]}")
    page = await settled(client, lambda p: succeeded(p) >= before + 20
                         and value(p, "ikl_jobs_running", actor="sync_document") == 0, timeout=60)
    assert value(page, "ikl_job_queue_messages", queue="indexing", state="waiting") == 0


async def test_a_failing_job_is_counted_as_failed(client, stack, worker):
    """A message its actor cannot take (an argument too many) fails; Dramatiq's own error line carries the
    job's id."""
    failed = lambda p: value(p, "ikl_job_runs_total", actor="sync_document", outcome="failed") or 0  # noqa: E731
    before = failed(await scrape(client))
    job_id = await asyncio.to_thread(enqueue, "sync_document", "incidents", "x", "one too many")
    await settled(client, lambda p: failed(p) > before, timeout=30)
    lines = await eventually(lambda: asyncio.to_thread(job_lines, stack, job_id), timeout=15)
    error = next(r for r in lines if r["level"] == "error")
    assert error["actor"] == "sync_document" and error["logger"].startswith("dramatiq") and "TypeError" in error["exc"]


async def test_a_429_is_counted_under_its_class(client, bk):
    user = await create_user(bk, data=UserCreate(username=f"m-{uuid.uuid4().hex[:6]}", role=Role.EDITOR))
    headers = {"Authorization": f"Token {await issue_token(bk, user=user)}"}
    refusals = lambda p, cls: value(p, "ikl_rate_limit_refusals_total", **{"class": cls}) or 0  # noqa: E731
    before = await scrape(client)
    saved = (bk.settings.rate_limit_read, bk.settings.rate_limit_write)
    bk.settings.rate_limit_read, bk.settings.rate_limit_write = 1, 1
    try:
        # (an empty namespace: the page never holds what other tests wrote straight to MongoDB)
        page = {"namespace": f"m{uuid.uuid4().hex[:8]}"}
        assert (await client.get("/api/v1/incidents/", headers=headers, params=page)).status_code == 200
        assert (await client.get("/api/v1/incidents/", headers=headers, params=page)).status_code == 429
        assert (await client.get("/api/v1/incidents/", headers=headers, params=page)).status_code == 429
        assert (await client.post("/api/v1/incidents/", headers=headers, json={"title": "m"})).status_code == 201
        assert (await client.post("/api/v1/incidents/", headers=headers, json={"title": "m"})).status_code == 429
    finally:
        bk.settings.rate_limit_read, bk.settings.rate_limit_write = saved
    after = await scrape(client)  # this process's own counter: no wait
    assert refusals(after, "read") == refusals(before, "read") + 2
    assert refusals(after, "write") == refusals(before, "write") + 1
    assert refusals(after, "search") == refusals(before, "search")


async def test_an_access_log_line_is_json_with_the_request_id(client):
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("app.access")
    saved = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        r = await client.get("/api/v1/incidents/", headers={"X-Request-ID": "metrics-test-42"})
        assert r.status_code == 401
    finally:
        access.removeHandler(handler)
        access.setLevel(saved)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    line = next(x for x in lines if x.get("request_id") == "metrics-test-42")
    assert line["logger"] == "app.access" and line["msg"] == "request" and line["status"] == 401
    assert line["path"] == "/api/v1/incidents/" and line["method"] == "GET" and "job_id" not in line


def test_a_line_in_a_job_keeps_the_jobs_actor_and_the_records_own():
    """The job's context names the line; a field of the record with the same name is kept beside it."""
    import contextvars

    from app.logs import job_var

    def emit() -> dict:
        job_var.set(("msg-1", "run_postmortem_generation"))
        record = logging.LogRecord("app.jobs", logging.WARNING, __file__, 1, "broker unavailable", None, None)
        record.actor, record.error = "sync_document", "down"
        return json.loads(JsonFormatter().format(record))

    line = contextvars.copy_context().run(emit)
    assert line["job_id"] == "msg-1" and line["actor"] == "run_postmortem_generation"
    assert line["extra_actor"] == "sync_document" and line["error"] == "down" and line["level"] == "warning"
    assert job_var.get() is None  # set in that context only


def test_a_lines_time_is_what_datetime_writes_to_the_millisecond():
    """The formatter writes each second's text once; the milliseconds are datetime's own (rounded to the
    microsecond, then cut), also at the edges where a float's fraction rounds up to the next second."""
    import random
    from datetime import datetime, timezone

    from app.logs import _timestamp

    rng = random.Random(7)
    moments = [rng.uniform(1.7e9, 1.8e9) for _ in range(5000)]
    moments += [int(m) + edge for m in moments[:200] for edge in (0.0, 0.0005, 0.9995, 0.9999995, 0.9999996)]
    for created in moments:
        assert _timestamp(created) == datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")


def test_a_record_asked_with_its_stack_carries_it():
    """configure_logging spares what no line carries (thread and process names), not the caller's frames: a record
    logged with stack_info=True is written with its stack."""
    from app.logs import configure_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    out = io.StringIO()
    try:
        configure_logging("INFO")
        root.handlers[0].setStream(out)
        logging.getLogger("tests.stack").warning("where from", stack_info=True)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    line = json.loads(out.getvalue().splitlines()[-1])
    assert line["msg"] == "where from" and "test_a_record_asked_with_its_stack_carries_it" in line["stack"]
    assert "thread" not in line and "process" not in line


def test_a_value_orjson_refuses_is_still_written_as_one_json_line():
    record = logging.LogRecord("app.jobs", logging.INFO, __file__, 1, "counted", None, None)
    record.total, record.when = 2 ** 70, object()
    line = json.loads(JsonFormatter().format(record))
    assert line["total"] == 2 ** 70 and line["when"].startswith("<object object") and line["msg"] == "counted"


async def test_metrics_answers_without_the_database_and_the_broker():
    """Nothing listens where MongoDB and Valkey should be: the scrape still answers 200 (open, as before),
    in about a second, with this process's figures and the sources marked down."""
    dead = get_settings().model_copy(update={"mongodb_url": f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
                                             "broker_url": f"redis://127.0.0.1:{free_port()}/0"})
    app = Starlette(routes=[Route("/metrics", metrics)])
    app.state.backends = connect(dead)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            started = time.monotonic()
            r = await c.get("/metrics")
            took = time.monotonic() - started
    finally:
        await app.state.backends.close()
    assert r.status_code == 200 and took < 5, took
    page = samples(r.text)
    assert value(page, "ikl_metrics_source_up", source="broker") == 0
    assert value(page, "ikl_metrics_source_up", source="mongodb") == 0
    assert not any(name.startswith(("ikl_job", "ikl_outbox")) for name, _ in page)
    assert any(name == "process_cpu_seconds_total" for name, _ in page)


async def test_an_api_process_without_its_broker_answers_metrics_and_logs_only_json(stack):
    """uvicorn's own lines (start, stop), the access log and the app's warnings: all JSON, from a real server
    whose broker is unreachable; /metrics answers with the database's figures."""
    port, db = free_port(), f"ikl_metrics_{uuid.uuid4().hex[:6]}"
    log_path = stack.root / "logs" / f"api-metrics-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
           "IKL_LOG_LEVEL": "INFO", "IKL_MONGODB_DB": db, "IKL_INDEX_PREFIX": db, "IKL_OUTBOX_SWEEP_INTERVAL": "0"}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port",
                                 str(port), "--log-level", "info"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            async def up():
                try:
                    return (await c.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    assert proc.poll() is None, log_path.read_text()[-2000:]
                    return False
            await eventually(up, timeout=90, interval=0.3)
            r = await c.get("/metrics", headers={"X-Request-ID": "metrics-api-7"})
            assert r.status_code == 200
            page = samples(r.text)
            assert value(page, "ikl_metrics_source_up", source="broker") == 0
            assert value(page, "ikl_metrics_source_up", source="mongodb") == 1
            assert value(page, "ikl_index_lag_seconds", index="incidents") == 0
            assert (await c.get("/api/v1/incidents/", headers={"X-Request-ID": "metrics-api-8"})).status_code == 401
    finally:
        stop(proc, signal.SIGINT, timeout=20)
        bk = connect(get_settings())
        await bk.client.drop_database(db)
        await bk.close()
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line: one JSON object
    msgs = {(r["logger"], r["msg"].split(" [")[0]) for r in records}
    assert ("uvicorn.error", "Started server process") in msgs and ("uvicorn.error", "Finished server process") in msgs
    assert not any("color_message" in r for r in records)
    assert any(r["logger"] == "app.metrics" and r.get("source") == "broker"
               and r.get("request_id") == "metrics-api-7" for r in records)
    access = next(r for r in records if r["logger"] == "app.access" and r.get("request_id") == "metrics-api-8")
    assert access["status"] == 401 and access["path"] == "/api/v1/incidents/"


async def test_the_worker_entry_point_writes_only_json(stack):
    """`python -m app.workerproc`: Dramatiq's supervising process (boot, signals) in JSON too. Its own database,
    broker database and queue, and no periodic jobs: it touches nothing of the other tests."""
    db = f"ikl_metrics_{uuid.uuid4().hex[:6]}"
    log_path = stack.root / "logs" / f"workerproc-{db}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IKL_LOG_LEVEL": "INFO", "IKL_MONGODB_DB": db,
           "BROKER_URL": get_settings().broker_url.rsplit("/", 1)[0] + "/7", "IKL_OUTBOX_SWEEP_INTERVAL": "0",
           "IKL_POSTMORTEM_GENERATION_SWEEP_INTERVAL": "0", "IKL_WEBHOOK_SWEEP_SECONDS": "0",
           "IKL_RECOMMENDATION_CALIBRATION_REFIT_SECONDS": "0", "IKL_AUDIT_RETENTION_DAYS": "0"}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "app.workerproc", "--processes", "1", "--threads", "1",
                                 "--queues", f"metrics-{db}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        async def ready():
            assert proc.poll() is None, log_path.read_text()[-2000:]
            return "is ready for action" in log_path.read_text()
        await eventually(ready, timeout=90, interval=0.3)
    finally:
        stop(proc, signal.SIGTERM, timeout=30)
        bk = connect(get_settings())
        await bk.client.drop_database(db)
        await bk.close()
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    loggers = {r["logger"] for r in records}
    assert "dramatiq.MainProcess" in loggers and any(name.startswith("dramatiq.WorkerProcess") for name in loggers)
    assert any("is booting up" in r["msg"] for r in records)
    assert any("Sending signal" in r["msg"] for r in records)

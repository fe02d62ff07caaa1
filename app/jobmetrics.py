"""Job figures shared by every process: what the workers ran, read by the API's `/metrics`.

Workers are processes of their own, so the worker middleware `JobObservability` keeps the figures in the
broker's Valkey/Redis, where any API process reads them at scrape time (`read`):

- `ikl:jobs:stats` (hash): per actor, runs that succeeded, failed, were retries of an earlier run, or were
  skipped, and the duration histogram (a count per bucket, not cumulative, and the sum) — counters that
  only grow, like Prometheus's own;
- `ikl:jobs:running` (hash): per worker process and actor, the jobs running now, written as an absolute
  value (a lost write heals with the next one); `ikl:jobs:alive` (hash): each worker process's last
  heartbeat. The running figures of a process that stopped heartbeating (killed) are ignored, and removed
  by the other workers' heartbeats.

A job costs one pipelined round trip when it starts (its process's running count) and one when it ends
(outcome, duration, running count); a broker that is down costs the figures of the jobs run meanwhile and a
logged warning (once a minute), never the job: after a failed write the jobs' writes pause for a few
seconds, so jobs do not wait on a broker that is down. The same middleware sets the job's log context (app/logs.py `job_var`: `job_id`, `actor`).

The broker's own queues are read where Dramatiq's Redis broker keeps them: `<ns>:<queue>` (a list of the
message ids waiting), `<ns>:<queue>.DQ` (delayed: retries and messages sent with a delay) and
`<ns>:<queue>.XQ` (a sorted set: dead-lettered, kept a week)."""

from __future__ import annotations

import bisect
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import redis

from app import jobs
from app.logs import job_var
from app.settings import Settings

log = logging.getLogger(__name__)

STATS, RUNNING, ALIVE = "ikl:jobs:stats", "ikl:jobs:running", "ikl:jobs:alive"
OUTCOMES = ("succeeded", "failed", "retried", "skipped")
# seconds: an index sync takes milliseconds, a postmortem generation seconds, a mining run minutes
BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 60.0  # a worker process silent this long is gone: its running figures no longer count
PAUSE_SECONDS = 5.0  # after a failed write, the jobs' writes wait this long (the heartbeat tries meanwhile)


def _bucket(seconds: float) -> str:
    i = bisect.bisect_left(BUCKETS, seconds)
    return "+Inf" if i == len(BUCKETS) else repr(BUCKETS[i])


class JobObservability(dramatiq.Middleware):
    """Per message: the log context (`job_id`, `actor`), the running count, and at the end the outcome and
    duration — in the broker's Valkey, for every API process's `/metrics`.

    The worker threads of a process write one at a time, each write carrying the running counts as they are
    when it is sent: a later write always carries later counts. A failed write pauses them for a few seconds
    (the jobs do not queue up behind a broker that is down); the heartbeat brings the counts back."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: redis.Redis | None = None
        self._lock = threading.Lock()  # the state below
        self._write_lock = threading.Lock()  # one write at a time, in order
        self._id_lock = threading.Lock()
        self._started: dict[str, tuple[str, float]] = {}  # message id -> (actor, perf_counter at start)
        self._running: dict[str, int] = {}  # actor -> jobs of this process running now
        self._process = ""
        self._stop = threading.Event()
        self._paused_until = 0.0
        self._warned = 0.0

    # -- the worker's hooks (each worker thread calls them for its own messages) --

    def before_process_message(self, broker, message) -> None:
        actor = message.actor_name
        job_var.set((message.message_id, actor))
        with self._lock:
            self._started[message.message_id] = (actor, time.perf_counter())
            self._running[actor] = self._running.get(actor, 0) + 1
        retry = message.options.get("retries", 0) > 0

        def write(pipe) -> None:
            self._put_running(pipe, actor)
            pipe.hset(ALIVE, self.process, int(time.time()))
            if retry:
                pipe.hincrby(STATS, f"{actor}|retried", 1)

        self._write(write)

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        self._finish(message, "succeeded" if exception is None else "failed")

    def after_skip_message(self, broker, message) -> None:
        self._finish(message, "skipped")

    def after_worker_boot(self, broker, worker) -> None:
        threading.Thread(target=self._heartbeat, name="job-metrics-heartbeat", daemon=True).start()

    def before_worker_shutdown(self, broker, worker) -> None:
        self._stop.set()
        with self._lock:
            fields = [f"{self.process}|{actor}" for actor in self._running]

        def write(pipe) -> None:  # this process's figures go with it
            pipe.hdel(ALIVE, self.process)
            if fields:
                pipe.hdel(RUNNING, *fields)

        self._write(write, always=True)

    # -- internals --

    @property
    def process(self) -> str:
        """This worker process's id in the running figures (made in the process, after the fork that made it)."""
        pid = f":{os.getpid()}"
        if not self._process.endswith(pid):
            with self._id_lock:  # the worker threads' first messages may ask at once: one id
                if not self._process.endswith(pid):
                    self._process = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}{pid}"
        return self._process

    def _put_running(self, pipe, actor: str) -> None:
        with self._lock:
            running = self._running.get(actor, 0)
        pipe.hset(RUNNING, f"{self.process}|{actor}", running)

    def _finish(self, message, outcome: str) -> None:
        job_var.set(None)
        with self._lock:
            started = self._started.pop(message.message_id, None)
            if started is None:  # skipped before our `before` hook ran (an earlier middleware refused it)
                actor, elapsed = message.actor_name, None
            else:
                actor, began = started
                elapsed = time.perf_counter() - began
                self._running[actor] = max(self._running.get(actor, 1) - 1, 0)

        def write(pipe) -> None:
            pipe.hincrby(STATS, f"{actor}|{outcome}", 1)
            if elapsed is not None and outcome != "skipped":
                pipe.hincrby(STATS, f"{actor}|b|{_bucket(elapsed)}", 1)
                pipe.hincrbyfloat(STATS, f"{actor}|sum", round(elapsed, 6))
            if started is not None:
                self._put_running(pipe, actor)

        self._write(write)

    def _heartbeat(self) -> None:
        """Every few seconds: this process is alive, its running counts as they are; and the figures of
        processes gone silent are removed."""
        while True:
            now = int(time.time())

            def write(pipe) -> None:
                pipe.hset(ALIVE, self.process, now)
                with self._lock:
                    actors = list(self._running)
                for actor in actors:
                    self._put_running(pipe, actor)

            if self._write(write, always=True):
                try:
                    self._sweep(now)
                except Exception as exc:  # noqa: BLE001 - tried again at the next heartbeat
                    self._warn("job metrics: stale workers not removed", exc)
            if self._stop.wait(HEARTBEAT_SECONDS):
                return

    def _sweep(self, now: int) -> None:
        client = self._redis()
        alive = {k.decode(): int(v) for k, v in client.hgetall(ALIVE).items()}
        gone = {p for p, seen in alive.items() if now - seen > STALE_SECONDS}
        if not gone:
            return
        fields = [f for f in (k.decode() for k in client.hkeys(RUNNING)) if f.rsplit("|", 1)[0] in gone]
        with client.pipeline(transaction=False) as pipe:
            pipe.hdel(ALIVE, *gone)
            if fields:
                pipe.hdel(RUNNING, *fields)
            pipe.execute()

    def _redis(self) -> redis.Redis:
        if self._client is None:  # made in the worker process (after the fork), short timeouts
            t = self.settings.broker_timeout_seconds
            self._client = redis.Redis.from_url(self.settings.broker_url, socket_connect_timeout=t, socket_timeout=t)
        return self._client

    def _write(self, commands, *, always: bool = False) -> bool:
        """Send `commands(pipe)` as one MULTI/EXEC round trip (a scrape sees all of it or none); False when
        the broker could not be reached (or was not tried: paused after a failure, unless `always`)."""
        if not always and time.monotonic() < self._paused_until:
            return False
        with self._write_lock:
            try:
                with self._redis().pipeline(transaction=True) as pipe:
                    commands(pipe)
                    pipe.execute()
                return True
            except Exception as exc:  # noqa: BLE001 - figures are lost, never the job
                self._paused_until = time.monotonic() + PAUSE_SECONDS
                self._warn("job metrics not recorded; broker unavailable", exc)
                return False

    def _warn(self, message: str, exc: Exception) -> None:
        if time.monotonic() - self._warned > 60:
            self._warned = time.monotonic()
            log.warning(message, extra={"error": str(exc)[:200]})


@dataclass
class JobFigures:
    """What `read` found: per actor, the outcome counters, the histogram and the jobs running; per queue,
    the messages waiting, delayed and dead-lettered."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # actor -> outcome -> runs
    buckets: dict[str, dict[str, int]] = field(default_factory=dict)  # actor -> bucket bound -> runs (not cumulative)
    sums: dict[str, float] = field(default_factory=dict)  # actor -> seconds
    running: dict[str, int] = field(default_factory=dict)  # actor -> jobs running now, all live workers
    queues: dict[str, dict[str, int]] = field(default_factory=dict)  # queue -> state -> messages
    workers: int = 0  # worker processes that heartbeat


def queue_keys(namespace: str, queue: str) -> dict[str, tuple[str, str]]:
    """Where Dramatiq's Redis broker keeps a queue: state -> (command, key)."""
    return {"waiting": ("llen", f"{namespace}:{queue}"), "delayed": ("llen", f"{namespace}:{queue}.DQ"),
            "dead": ("zcard", f"{namespace}:{queue}.XQ")}


async def read(client: Any, *, namespace: str = "dramatiq") -> JobFigures:
    """The job figures of every worker, and the broker's queue lengths, in one round trip (`client`: an
    async Redis client, the API's `Backends.redis`). Raises when the broker cannot be reached."""
    queues = sorted(set(jobs.QUEUES.values()))
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(STATS)
        pipe.hgetall(RUNNING)
        pipe.hgetall(ALIVE)
        for queue in queues:
            for command, key in queue_keys(namespace, queue).values():
                getattr(pipe, command)(key)
        stats, running, alive, *lengths = await pipe.execute()
    out = JobFigures()
    for raw, value in stats.items():
        actor, _, what = raw.decode().partition("|")
        if what == "sum":
            out.sums[actor] = float(value)
        elif what.startswith("b|"):
            out.buckets.setdefault(actor, {})[what[2:]] = int(value)
        elif what in OUTCOMES:
            out.counts.setdefault(actor, {})[what] = int(value)
    now = time.time()
    live = {k.decode() for k, v in alive.items() if now - int(v) <= STALE_SECONDS}
    out.workers = len(live)
    for raw, value in running.items():
        process, _, actor = raw.decode().rpartition("|")
        if process in live:
            out.running[actor] = out.running.get(actor, 0) + max(int(value), 0)
    states = list(queue_keys(namespace, "q"))
    for i, queue in enumerate(queues):
        out.queues[queue] = dict(zip(states, (int(n) for n in lengths[i * len(states):(i + 1) * len(states)])))
    return out

"""The Dramatiq broker and actors. Actors only call services; they hold no logic.

Run a worker with `python -m app.workerproc [dramatiq options]` (`dramatiq app.worker` with JSON logs in its
supervising process too; the `run` command starts one). Async actors run on the
AsyncIO middleware's event loop, and this process builds its own connections on first use.
"""

from __future__ import annotations

import asyncio

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import AsyncIO

from app import domains, jobs, periodic  # noqa: F401 - domains: every hook, job handler and periodic job
from app.backends import Backends, connect
from app.jobmetrics import JobObservability
from app.logs import configure_logging
from app.settings import get_settings

configure_logging(get_settings().log_level)
_backends: Backends | None = None


async def backends() -> Backends:
    global _backends
    if _backends is None:
        _backends = connect(get_settings(), jobs=True)
    return _backends


class Sweeps(dramatiq.Middleware):
    """Each worker process runs the periodic jobs the domains declared (app/periodic.py `every`): the index
    outbox with its jobs, the postmortem generations left PENDING or with an expired lease, the articles of
    postmortems published while they could not be written, embedding backfills, the confidence calibration
    refit, the scheduled pattern mining (once across all workers), the webhook deliveries and the overdue
    action items — each lane in its own loop."""

    def after_worker_boot(self, broker, worker) -> None:
        thread = get_event_loop_thread()
        self.futures = []
        if thread is None:
            return

        async def lane(scheduled) -> None:
            await periodic.run_lane(await backends(), scheduled)

        for scheduled in periodic.lanes(get_settings()).values():
            self.futures.append(asyncio.run_coroutine_threadsafe(lane(scheduled), thread.loop))

    def before_worker_shutdown(self, broker, worker) -> None:
        for future in getattr(self, "futures", []):
            future.cancel()


broker = jobs.broker()  # the broker app/jobs.py sends to, with what a worker adds
broker.add_middleware(AsyncIO())
broker.add_middleware(Sweeps())
# job figures for /metrics, and job_id and actor in every log line of a job: first of all, so that its context
# is set before the other middleware's hooks run and cleared after theirs
broker.add_middleware(JobObservability(get_settings()), before=type(broker.middleware[0]))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="indexing", max_retries=0)
async def sync_document(index: str, doc_id: str) -> None:
    """Sync one document's outbox entry to the search index, or run its job (failures stay in the outbox)."""
    from app.indexing import outbox

    await outbox.drain(await backends(), index=index, doc_id=doc_id, limit=1, due_only=False, jobs=True)


@dramatiq.actor(queue_name="postmortems", max_retries=0, time_limit=600_000)
async def run_postmortem_generation(generation_id: str) -> None:
    """Run one postmortem generation (a failure is recorded on its log; the sweep re-runs lost ones)."""
    from app.postmortems import generations

    await generations.run(await backends(), generation_id)


@dramatiq.actor(queue_name="patterns", max_retries=0, time_limit=3_600_000)
async def mine_learning_patterns(days: int, min_frequency: int, run_id: str | None = None) -> None:
    """A mining run asked for by an admin (GraphQL `startPatternMining`): the PENDING run `run_id` it recorded."""
    from app.patterns import runs

    await runs.run(await backends(), days=days, min_frequency=min_frequency, trigger="requested", run_id=run_id)


# every job sent by name (app/jobs.py) has its actor here, on the queue it is sent to
_declared = {name: actor.queue_name for name, actor in broker.actors.items()}
if any(_declared.get(name) != queue for name, queue in jobs.QUEUES.items()):
    raise RuntimeError(f"app/jobs.py QUEUES {jobs.QUEUES} does not match the actors declared here {_declared}")

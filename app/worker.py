"""The Dramatiq broker and actors. Actors only call services; they hold no logic.

Run a worker with `dramatiq app.worker` (the `run` command starts one). Async actors run on the
AsyncIO middleware's event loop, and this process builds its own connections on first use.
"""

from __future__ import annotations

import asyncio
import time

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO

from app.backends import Backends, connect
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
    """Each worker process sweeps the index outbox (so index sync goes on while no API runs), the
    postmortem generations left PENDING or with an expired lease (a lost message, a killed worker), the
    articles of postmortems published while their article could not be written, incidents without a
    current embedding, articles likewise (written before, or by another model), refits the recommendations'
    confidence calibration from ratings every `recommendation_calibration_refit_seconds`, and mines learning
    patterns every `pattern_mining_interval_seconds` (once across all workers: app/patterns/runs.py `due`)."""

    def after_worker_boot(self, broker, worker) -> None:
        settings = get_settings()
        thread = get_event_loop_thread()
        self.futures = []
        if thread is None:
            return
        from app import periodic
        from app.indexing import outbox
        from app.articles import embeddings as article_embeddings
        from app.incidents import embeddings
        from app.postmortems import generations, service
        from app.patterns import runs
        from app.recommendations import calibration

        async def outbox_sweep() -> None:
            await outbox.sweep_forever(await backends(), settings.outbox_sweep_interval, jobs=True)

        async def maintenance_sweep() -> None:
            bk = await backends()

            last_refit = 0.0

            async def step() -> None:
                nonlocal last_refit
                await generations.sweep(bk)
                await service.sync_pending_articles(bk)
                await embeddings.backfill(bk)
                await article_embeddings.backfill(bk)
                if time.monotonic() - last_refit > settings.recommendation_calibration_refit_seconds:
                    last_refit = time.monotonic()
                    await calibration.refit(bk)
                if settings.pattern_mining_interval_seconds > 0 and await runs.due(bk):
                    await runs.run(bk, days=settings.pattern_mining_days,
                                   min_frequency=settings.pattern_mining_min_frequency, trigger="schedule")

            await periodic.forever(step, settings.postmortem_generation_sweep_interval, name="maintenance sweep")

        for interval, sweep in ((settings.outbox_sweep_interval, outbox_sweep),
                                (settings.postmortem_generation_sweep_interval, maintenance_sweep)):
            if interval > 0:
                self.futures.append(asyncio.run_coroutine_threadsafe(sweep(), thread.loop))

    def before_worker_shutdown(self, broker, worker) -> None:
        for future in getattr(self, "futures", []):
            future.cancel()


broker = RedisBroker(url=get_settings().broker_url, socket_connect_timeout=1, socket_timeout=5)
broker.add_middleware(AsyncIO())
broker.add_middleware(Sweeps())
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

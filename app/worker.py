"""The Dramatiq broker and actors. Actors only call services; they hold no logic.

Run a worker with `dramatiq app.worker` (the `run` command starts one). Async actors run on the
AsyncIO middleware's event loop, and this process builds its own connections on first use.
"""

from __future__ import annotations

import asyncio

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
        _backends = connect(get_settings())
    return _backends


class OutboxSweep(dramatiq.Middleware):
    """Each worker process also sweeps the index outbox, so index sync goes on while no API runs."""

    def after_worker_boot(self, broker, worker) -> None:
        interval = get_settings().outbox_sweep_interval
        thread = get_event_loop_thread()
        if interval > 0 and thread is not None:
            from app.indexing import outbox

            async def sweep() -> None:
                await outbox.sweep_forever(await backends(), interval)

            self.future = asyncio.run_coroutine_threadsafe(sweep(), thread.loop)

    def before_worker_shutdown(self, broker, worker) -> None:
        if getattr(self, "future", None) is not None:
            self.future.cancel()


broker = RedisBroker(url=get_settings().broker_url, socket_connect_timeout=1, socket_timeout=5)
broker.add_middleware(AsyncIO())
broker.add_middleware(OutboxSweep())
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="indexing", max_retries=0)
async def sync_document(index: str, doc_id: str) -> None:
    """Sync one document's outbox entry to the search index (failures stay in the outbox)."""
    from app.indexing import outbox

    await outbox.drain(await backends(), index=index, doc_id=doc_id, limit=1, due_only=False)

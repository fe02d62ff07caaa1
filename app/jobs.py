"""Jobs sent to the workers, by actor name: the one place the API, the commands and the worker reach the
broker. Nothing here imports the worker module (app/worker.py declares the actors named in `QUEUES` on the
broker `broker()` returns), so a domain sends a job without depending on the process that runs it.

What a job is asked to do is always recorded in MongoDB first (an outbox entry, a PENDING generation or
mining run), so a broker that is down only delays the work until a worker's sweep finds it: `send` logs
and returns, it never fails the caller."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from app.settings import Settings, get_settings

log = logging.getLogger(__name__)

# actor name -> queue: the actors app/worker.py declares (it checks that each one is here, on that queue)
QUEUES = {
    "sync_document": "indexing",
    "run_postmortem_generation": "postmortems",
    "mine_learning_patterns": "patterns",
}

_broker: RedisBroker | None = None


def broker(settings: Settings | None = None) -> RedisBroker:
    """The process's broker (created on first use from the settings' `broker_url`)."""
    global _broker
    if _broker is None:
        url = (settings or get_settings()).broker_url
        _broker = RedisBroker(url=url, socket_connect_timeout=1, socket_timeout=5)
    return _broker


def message(actor_name: str, *args: Any) -> dramatiq.Message:
    """The message that asks the worker's actor `actor_name` to run with `args`."""
    if actor_name not in QUEUES:
        raise ValueError(f"unknown job {actor_name!r}; known: {sorted(QUEUES)}")
    return dramatiq.Message(queue_name=QUEUES[actor_name], actor_name=actor_name, args=args, kwargs={}, options={})


async def send(settings: Settings, actor_name: str, *args: Any) -> None:
    """Send a job to the workers; a broker that is down is logged and left to the sweeps."""
    msg = message(actor_name, *args)
    try:
        await asyncio.to_thread(broker(settings).enqueue, msg)
    except Exception as exc:  # noqa: BLE001 - the work is recorded: a sweep will pick it up
        log.warning("broker unavailable, work left to the sweep", extra={"actor": actor_name, "error": str(exc)[:300]})

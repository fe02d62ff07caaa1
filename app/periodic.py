"""Background sweeps: one step every `interval` seconds until cancelled, errors logged and survived."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)


async def forever(step: Callable[[], Awaitable[Any]], interval: float, *, name: str) -> None:
    """Run `step()` every `interval` seconds until cancelled; a failing step is logged and retried.

    A cancellation that arrives while the driver is inside a network call can be turned into a
    driver error (PyMongo with socket timeouts does); the task's pending cancellation is checked
    after every step, so a stop is never lost."""
    task = asyncio.current_task()
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - keep sweeping
            log.warning("%s failed", name, extra={"error": str(exc)[:300]})
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        await asyncio.sleep(interval)

"""Periodic jobs: declared by the domain that owns them (`every`), run by each worker process.

A job is a name, how often it runs (read from the settings when the worker starts; 0 or less: never), a
lane, and `step(bk)`. Each lane is one loop in which its due jobs run one after another (so the
maintenance jobs never overlap one another), while lanes run side by side (the outbox never waits for a
long mining run). Errors are logged and the job is tried again at its next time; `forever` is the loop
itself, also used for the API's own outbox sweep."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from app.backends import Backends
from app.settings import Settings

log = logging.getLogger(__name__)

OUTBOX, MAINTENANCE = "outbox", "maintenance"  # the lanes


@dataclass(frozen=True)
class Job:
    name: str
    period: Callable[[Settings], float]  # seconds between two runs
    step: Callable[[Backends], Awaitable[Any]]
    lane: str = MAINTENANCE


REGISTRY: dict[str, Job] = {}


def maintenance_interval(settings: Settings) -> float:
    """How often the maintenance jobs run: `IKL_POSTMORTEM_GENERATION_SWEEP_INTERVAL` (the first of them)."""
    return settings.postmortem_generation_sweep_interval


def every(period: Callable[[Settings], float], *, name: str, lane: str = MAINTENANCE):
    """Decorator: run `step(bk)` every `period(settings)` seconds in each worker (0 or less: never)."""
    def register(step: Callable[[Backends], Awaitable[Any]]):
        REGISTRY[name] = Job(name=name, period=period, step=step, lane=lane)
        return step

    return register


def lanes(settings: Settings) -> dict[str, list[tuple[Job, float]]]:
    """The registered jobs that run at all under `settings`, with their periods, by lane (registration order)."""
    out: dict[str, list[tuple[Job, float]]] = {}
    for job in REGISTRY.values():
        if (seconds := job.period(settings)) > 0:
            out.setdefault(job.lane, []).append((job, seconds))
    return out


async def run_lane(bk: Backends, jobs: list[tuple[Job, float]]) -> None:
    """Run each job of one lane when it is due, one after another, until cancelled."""
    due = {job.name: 0.0 for job, _ in jobs}

    async def step() -> None:
        for job, seconds in jobs:
            if time.monotonic() < due[job.name]:
                continue
            try:
                await job.step(bk)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - tried again at its next time
                log.warning("%s failed", job.name, extra={"error": str(exc)[:300]})
            due[job.name] = time.monotonic() + seconds

    await forever(step, min(seconds for _, seconds in jobs), name=f"{jobs[0][0].lane} jobs")


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

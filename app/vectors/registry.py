"""One VectorIndex per collection per process, refreshed on use at most every `refresh_seconds`."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from app.vectors.index import DIM, VectorIndex

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    index: VectorIndex
    checked: float = float("-inf")          # monotonic time of the last refresh attempt
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loop: Any = None


_REGISTRY: dict[tuple[str, str, str], _Entry] = {}


def _entry(bk: Any, name: str, dim: int) -> _Entry:
    key = (bk.settings.mongodb_url, bk.settings.mongodb_db, name)
    e = _REGISTRY.get(key)
    if e is None:
        e = _REGISTRY[key] = _Entry(VectorIndex(name, dim=dim))
    loop = asyncio.get_running_loop()
    if e.loop is not loop:  # an asyncio.Lock belongs to one event loop
        e.lock, e.loop = asyncio.Lock(), loop
    return e


async def get_index(bk: Any, name: str = "incidents", *, refresh_seconds: float = 10.0,
                    model: str | None = None, dim: int = DIM) -> VectorIndex:
    """The process's index over collection `name`, refreshed when the last refresh is older than
    `refresh_seconds`. One refresh at a time: while one runs, other callers get the index as it is
    (once loaded; before the first load they wait for it). A `model` other than the index's makes
    this call wait for a full reload. A failing refresh is logged and the current rows are served
    (it raises only while nothing was ever loaded); it is tried again after `refresh_seconds`."""
    e = _entry(bk, name, dim)
    idx = e.index
    if model is not None:
        idx.set_model(model)

    def fresh() -> bool:
        return idx.loaded and time.monotonic() - e.checked < refresh_seconds

    if fresh() or (idx.loaded and e.lock.locked()):
        return idx
    async with e.lock:
        if fresh():
            return idx
        try:
            await idx.refresh(bk)
        except Exception as exc:
            if not idx.loaded:
                raise
            log.warning("vector index refresh failed, serving the current rows",
                        extra={"collection": name, "error": str(exc)[:300]})
        finally:
            e.checked = time.monotonic()
    return idx


def clear_registry() -> None:
    """Forget every index (tests)."""
    _REGISTRY.clear()

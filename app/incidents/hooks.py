"""What happens to an incident, announced to the domains that build on incidents.

Incidents know nothing of postmortems or recommendations: those subscribe here (where their reaction is
defined, at import) and the incidents service announces `OPENED`, `LEARNED` (a root cause or an analysis
became known while it is open) and `RESOLVED`. A subscriber may prepare before the writing transaction
(`prepare(bk, incident)`: lookups that need not be in it), must write what it sets off inside that
transaction (`within(bk, incident, prepared, session)`: an outbox entry, a PENDING job — so a crash
loses nothing), and may dispatch after the commit (`after_commit(bk, outcome)`: ask a worker now; a
lost message is left to the sweeps). The entry points import every subscribing domain (app/domains.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Awaitable, Callable, Mapping

from app.backends import Backends


class Happened(str, Enum):
    OPENED = "opened"
    LEARNED = "learned"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Subscriber:
    within: Callable[[Backends, Mapping[str, Any], Any, Any], Awaitable[Any]]
    prepare: Callable[[Backends, Mapping[str, Any]], Awaitable[Any]] | None = None
    after_commit: Callable[[Backends, Any], Awaitable[None]] | None = None


_SUBSCRIBERS: dict[Happened, list[Subscriber]] = {h: [] for h in Happened}


def subscribe(what: Happened, *, within, prepare=None, after_commit=None) -> None:
    """React to `what` (see the module docstring for the three steps)."""
    _SUBSCRIBERS[what].append(Subscriber(within=within, prepare=prepare, after_commit=after_commit))


class Announcement:
    """One announcement of `what` for one write: prepared, then written within the transaction, then
    dispatched after it commits."""

    def __init__(self, bk: Backends, what: Happened, prepared: list[tuple[Subscriber, Any]]) -> None:
        self.bk, self.what, self._prepared = bk, what, prepared
        self._outcomes: list[tuple[Subscriber, Any]] = []

    async def within(self, incident: Mapping[str, Any], *, session=None) -> None:
        """Inside the writing transaction (`session`), with the incident as written."""
        self._outcomes = [(s, await s.within(self.bk, incident, prepared, session)) for s, prepared in self._prepared]

    async def after_commit(self) -> None:
        for s, outcome in self._outcomes:
            if s.after_commit is not None and outcome is not None:
                await s.after_commit(self.bk, outcome)


async def announce(bk: Backends, what: Happened, incident: Mapping[str, Any]) -> Announcement:
    """Start announcing `what` for `incident` (as it will be written): the subscribers prepare."""
    prepared = [(s, await s.prepare(bk, incident) if s.prepare is not None else None) for s in _SUBSCRIBERS[what]]
    return Announcement(bk, what, prepared)

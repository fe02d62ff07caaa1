"""What postmortems announce to outbound webhooks (app/webhooks/events.py), so that automation can start.

- `postmortem.published`: in the transaction that publishes it;
- `action_item.created`: for every action item a write brings that the postmortem did not hold before (by
  id) — a postmortem created with items, a whole-list write, a draft — in that write's transaction. The item
  goes with its `automation` link (a webhook event a workflow listens to, or a runbook URL to run), its
  postmortem (id, title, incident) and the postmortem's classification;
- `action_item.overdue`: a periodic job (every OVERDUE_PERIOD seconds, in the workers) finds the items past
  their due date, not DONE or WONT_DO, that became due within the last LOOKBACK_DAYS, and announces each once
  per due date (a due date moved later and missed again is announced again). It does nothing while no active
  webhook listens to the event.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Mapping

from pymongo.errors import DuplicateKeyError

from app import periodic
from app.backends import Backends
from app.postmortems.models import SETTLED_ITEM_STATUSES
from app.timefmt import isoz, utcnow
from app.webhooks import events

log = logging.getLogger(__name__)

OVERDUE_PERIOD = 60.0  # seconds between two looks for overdue action items
LOOKBACK_DAYS = 30     # items due longer ago than this are not announced (a fresh install, a long outage)
OVERDUE = "action_item.overdue"


def item_subject(pm: Mapping[str, Any], item: Mapping[str, Any]) -> dict[str, Any]:
    """An action item as a webhook subject: the item, its postmortem, the postmortem's classification."""
    return {**item, "postmortem": {"id": pm["_id"], "title": pm.get("title"), "incident": pm.get("incident")},
            "data_classification": pm.get("data_classification")}


async def items_created(bk: Backends, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, *,
                        session) -> None:
    """In a write's transaction: `action_item.created` for each item of `after` that `before` did not hold."""
    if after is None:
        return
    known = {i.get("id") for i in (before or {}).get("action_items") or [] if isinstance(i, dict)}
    for item in after.get("action_items") or []:
        if isinstance(item, dict) and item.get("id") not in known:
            await events.announce(bk, "action_item.created", item_subject(after, item), session=session)


async def moved(bk: Backends, action: str, doc: Mapping[str, Any], *, session) -> None:
    """In a workflow move's transaction: `postmortem.published` when it is the publication."""
    if action == "publish":
        await events.announce(bk, "postmortem.published", doc, session=session)


@periodic.every(lambda s: OVERDUE_PERIOD, name="overdue action items")
async def announce_overdue(bk: Backends, *, now: datetime | None = None) -> int:
    """Announce the action items that became overdue (see the module docstring); returns how many."""
    if not await events.subscribers(bk, OVERDUE):
        return 0
    now = now or utcnow()
    since = now - timedelta(days=LOOKBACK_DAYS)
    due = {"$gte": since, "$lt": now}
    found = bk.mongo.postmortems.find(
        {"action_items": {"$elemMatch": {"due_date": due, "status": {"$nin": list(SETTLED_ITEM_STATUSES)}}}},
        {"title": 1, "incident": 1, "data_classification": 1, "action_items": 1})
    announced = 0
    async for pm in found:
        for item in pm.get("action_items") or []:
            when = item.get("due_date") if isinstance(item, dict) else None
            if not isinstance(when, datetime) or not since <= when < now or item.get("status") in SETTLED_ITEM_STATUSES:
                continue
            try:
                if await events.announce(bk, OVERDUE, item_subject(pm, item),
                                         once=f"{OVERDUE}:{pm['_id']}:{item.get('id')}:{isoz(when)}"):
                    announced += 1
            except DuplicateKeyError:  # another worker announced it at the same moment
                continue
    if announced:
        log.info("overdue action items announced", extra={"announced": announced})
    return announced

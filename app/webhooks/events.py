"""Webhook events: what the domains announce, written as deliveries in the transaction that makes them happen.

This is the low half of outbound webhooks (docs/domains/webhooks.md), a shared mechanism: the domains import it
and it imports none of them. A domain calls `announce(bk, event, doc, session=s)` inside the transaction that
resolves the incident, publishes the postmortem, creates the action item, stores the recommendation or
validates the pattern. For every active webhook subscribed to the event one delivery is written in that same
transaction (`webhook_deliveries`: the payload as it will be sent, the subject's classification, status
`pending`, due now) — so a delivery exists exactly when its event does, and neither a crash of the API nor one
of a worker loses it. The workers send them (app/webhooks/delivery.py); nothing here touches the network.

The payload is `{"event", "delivery_id", "occurred_at", "subject_type", "subject"}`: the subject is a copy of
the document's fields listed in FIELDS for its type, as it was when the event happened (JSON: dates in ISO 8601
UTC). Whether the webhook's owner may see it is decided when it is sent, not here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import Any, Mapping

from app.backends import Backends
from app.timefmt import isoz, utcnow

EVENTS = ("incident.resolved", "postmortem.published", "action_item.created", "action_item.overdue",
          "recommendation.generated", "pattern.validated")
PING = "ping"  # a test delivery an admin asks for (never subscribed to)
SUBJECT_TYPE = {"incident.resolved": "incident", "postmortem.published": "postmortem",
                "action_item.created": "action_item", "action_item.overdue": "action_item",
                "recommendation.generated": "recommendation", "pattern.validated": "learning_pattern",
                PING: "webhook"}
# the subject's fields in a payload, by subject type (besides `id`)
FIELDS: dict[str, tuple[str, ...]] = {
    "incident": ("name", "title", "severity", "status", "namespace", "affected_services", "assignee", "reporter",
                 "detected_at", "resolved_at", "resolution", "root_cause", "data_classification"),
    "postmortem": ("incident", "title", "status", "severity", "owner", "approver", "due_date", "published_at",
                   "published_by", "data_classification"),
    "action_item": ("title", "description", "priority", "assignee", "due_date", "category", "status", "automation",
                    "postmortem", "data_classification"),
    "recommendation": ("incident", "recommendation_type", "title", "description", "confidence_score",
                       "confidence_level", "related_incident", "knowledge_article", "suggested_expert",
                       "suggested_actions", "learning_pattern", "created_at", "data_classification"),
    "learning_pattern": ("name", "pattern_type", "description", "confidence_score", "frequency", "actions",
                         "validated_by", "validated_at", "validation_notes", "data_classification"),
    "webhook": ("message",),
}
# where a subject's current classification is read when it is sent (an action item: its postmortem's)
SOURCE_COLLECTION = {"incident": "incidents", "postmortem": "postmortems", "action_item": "postmortems",
                     "recommendation": "recommendations", "learning_pattern": "learning_patterns"}

WEBHOOKS, DELIVERIES, ANNOUNCED = "webhooks", "webhook_deliveries", "webhook_announcements"
MAX_WEBHOOKS = 100  # registered at once: what one event can fan out to


class DeliveryStatus(str, Enum):
    PENDING = "pending"        # not tried yet
    RETRYING = "retrying"      # failed; tried again at next_attempt_at
    DELIVERED = "delivered"    # a 2xx answer
    FAILED = "failed"          # every attempt failed (it can be redelivered by hand)
    SKIPPED = "skipped"        # not sent: the webhook's owner may not see the subject, or the webhook is off


QUEUED = (DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value)


def plain(value: Any) -> Any:
    """A value as JSON: datetimes in ISO 8601 UTC, enums by value, mappings and lists recursively."""
    if isinstance(value, datetime):
        return isoz(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def subject(subject_type: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The subject of a payload: `id` and the FIELDS of its type, as JSON."""
    out = {"id": str(doc.get("_id") or doc.get("id") or "")}
    out.update({k: plain(doc.get(k)) for k in FIELDS[subject_type]})
    return out


def source_of(subject_type: str, doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """Where the subject's classification is read at delivery time: {collection, id}, or None."""
    collection = SOURCE_COLLECTION.get(subject_type)
    if collection is None:
        return None
    if subject_type == "action_item":
        ident = (doc.get("postmortem") or {}).get("id")
    else:
        ident = doc.get("_id") or doc.get("id")
    return {"collection": collection, "id": str(ident)} if ident else None


def delivery_doc(webhook_id: str, event: str, doc: Mapping[str, Any], *, occurred_at: datetime,
                 classification: str | None = None) -> dict[str, Any]:
    """One delivery of `event` about `doc` to one webhook: pending, due now."""
    subject_type = SUBJECT_TYPE[event]
    body = subject(subject_type, doc)
    delivery_id = str(uuid.uuid4())
    now = utcnow()
    return {"_id": delivery_id, "webhook_id": webhook_id, "event": event, "subject_type": subject_type,
            "subject_id": body["id"], "source": source_of(subject_type, doc),
            "data_classification": classification or doc.get("data_classification") or "INTERNAL",
            "payload": {"event": event, "delivery_id": delivery_id, "occurred_at": isoz(occurred_at),
                        "subject_type": subject_type, "subject": body},
            "occurred_at": occurred_at, "created_at": now, "status": DeliveryStatus.PENDING.value, "active": True,
            "next_attempt_at": now, "tries": 0, "attempts": [], "redeliveries": 0}


async def subscribers(bk: Backends, event: str, *, session=None) -> list[str]:
    """The ids of the active webhooks subscribed to `event`."""
    return [d["_id"] async for d in bk.mongo[WEBHOOKS].find({"events": event, "active": True}, {"_id": 1},
                                                             session=session).limit(MAX_WEBHOOKS)]


async def announce(bk: Backends, event: str, doc: Mapping[str, Any], *, session=None, once: str | None = None,
                   occurred_at: datetime | None = None) -> list[str]:
    """`event` happened to `doc` (for an action item: the item with `postmortem` {id, title, incident} and its
    postmortem's `data_classification`): a delivery for every active webhook subscribed to it, written with
    `session` (the caller's transaction) or in a transaction of its own. `once`: a key announced at most once
    (a second announcement with it writes nothing). Returns the delivery ids (none when nobody subscribes)."""
    return await announce_each(bk, event, [doc], session=session, once=once, occurred_at=occurred_at)


async def announce_each(bk: Backends, event: str, docs: list[Mapping[str, Any]], *, session=None,
                        once: str | None = None, occurred_at: datetime | None = None) -> list[str]:
    """`announce` for several subjects of one event at once (one look for the subscribers)."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}; known: {EVENTS}")
    at = occurred_at or utcnow()

    async def write(s) -> list[str]:
        hooks = await subscribers(bk, event, session=s) if docs else []
        if not hooks:
            return []
        if once is not None:
            if await bk.mongo[ANNOUNCED].find_one({"_id": once}, {"_id": 1}, session=s) is not None:
                return []
            await bk.mongo[ANNOUNCED].insert_one({"_id": once, "event": event, "at": at}, session=s)
        made = [delivery_doc(h, event, doc, occurred_at=at) for doc in docs for h in hooks]
        await bk.mongo[DELIVERIES].insert_many(made, session=s)
        return [d["_id"] for d in made]

    return await write(session) if session is not None else await bk.transaction(write)

"""Outbound webhooks, managed by admins: every rule about them lives here (docs/domains/webhooks.md).

- Admins register, list, change (url, events, secret, active, description) and delete webhooks; nobody else
  (`MANAGE_RULE`). A webhook carries no data classification of its own: it is a URL and a list of events
  (`LIST_SPEC` is unclassified, like the audit log's and the users'). What its deliveries carry is limited
  when they are sent, to what the admin who registered it (its owner, `created_by`) may see then.
- The target is checked when it is registered or changed (app/webhooks/targets.py: a 400 naming why) and
  again before every delivery. The secret is stored (it signs every delivery) and never answered: responses say
  `has_secret`; a PATCH with a new one rotates it.
- Deliveries (`webhook_deliveries`) are classified as their subject: an admin reads, in the delivery log
  (`DELIVERY_SPEC`, newest first), only those about subjects within their clearance, and redelivers only those.
  Redelivery sends the same delivery (same id, same body) again, from a fresh count of attempts.
- Incidents announce `incident.resolved` here (a hook written in the resolving transaction); the other domains
  call app/webhooks/events.py `announce` themselves. Every change is audit-logged (`webhook.create`,
  `webhook.update`, `webhook.delete`, `webhook.redeliver`, `webhook.test`), never with the secret.
"""

from __future__ import annotations

import uuid
from typing import Any, Mapping

from app.activity.service import record_audit
from app.backends import Backends
from app.errors import Conflict, ValidationFailed
from app.incidents import hooks
from app.incidents.hooks import Happened
from app.listing import Filter, ListSpec, Page, fetch_page, parse_list_params
from app.repository import Repository
from app.permissions import Rule
from app.timefmt import utcnow
from app.users.models import Role, User
from app.webhooks import events, targets
from app.webhooks.events import DELIVERIES, MAX_WEBHOOKS, PING, QUEUED, WEBHOOKS, DeliveryStatus
from app.webhooks.models import WebhookCreate, WebhookUpdate

SUBJECT = "webhook"
MANAGE_RULE = Rule(Role.ADMIN, classified=False,
                   note="webhooks carry no classification; each delivery is limited to its owner's clearance")
DELIVERY_RULE = Rule(Role.ADMIN, note="deliveries are classified as their subject")

LIST_SPEC = ListSpec(
    collection=WEBHOOKS, classified=False,  # admins only: a URL and events, no classified content
    filters=(Filter("active", "active", bool, description="Only active (true) or inactive (false) webhooks"),
             Filter("event", "events", description="Only the webhooks subscribed to this event")),
    ordering={"created_at": "created_at", "url": "url"}, default_ordering=("-created_at",))
DELIVERY_SPEC = ListSpec(
    collection=DELIVERIES,  # classified as their subject; one webhook's are read from (webhook_id, …) (app/db.py)
    filters=(Filter("status", "status", DeliveryStatus, description="Only the deliveries in these statuses "
                                                                    "(a comma list)"),
             Filter("event", "event", description="Only the deliveries of this event")),
    ordering={"created_at": "created_at"}, default_ordering=("-created_at",))


HOOKS = Repository("Webhook", "WEBHOOK_NOT_FOUND", LIST_SPEC)  # unclassified: admins only
DELIVERY_LOG = Repository("Delivery", "DELIVERY_NOT_FOUND", DELIVERY_SPEC)
_not_found = HOOKS.not_found


async def list_webhooks(bk: Backends, *, params: Mapping[str, Any]) -> Page:
    return await HOOKS.page(bk, params, None)


async def get_webhook(bk: Backends, *, webhook_id: str) -> dict[str, Any]:
    return await HOOKS.get(bk, webhook_id, None)


async def create_webhook(bk: Backends, *, actor: User, data: WebhookCreate) -> dict[str, Any]:
    """Register a webhook owned by `actor` (admins), its target checked (400) — at most MAX_WEBHOOKS (409)."""
    await targets.checked(data.url, bk.settings)
    if await bk.mongo[WEBHOOKS].count_documents({}) >= MAX_WEBHOOKS:
        raise Conflict(f"At most {MAX_WEBHOOKS} webhooks can be registered; delete one first",
                       {"max": MAX_WEBHOOKS}, code="TOO_MANY_WEBHOOKS")
    now = utcnow()
    doc = {"_id": str(uuid.uuid4()), "url": data.url, "events": data.events, "secret": data.secret,
           "active": data.active, "description": data.description, "created_by": actor.id, "created_at": now,
           "updated_at": now, "secret_updated_at": now}

    async def op(s):
        await bk.mongo[WEBHOOKS].insert_one(doc, session=s)
        await record_audit(bk, action="webhook.create", user=actor, subject_type=SUBJECT, subject_id=doc["_id"],
                           changes={"url": data.url, "events": data.events, "active": data.active}, session=s)

    await bk.transaction(op)
    return doc


async def update_webhook(bk: Backends, *, actor: User, webhook_id: str, data: WebhookUpdate) -> dict[str, Any]:
    """Change a webhook (admins): a new URL is checked (400); a new secret rotates it. Its owner stays."""
    current = await get_webhook(bk, webhook_id=webhook_id)
    changes = data.model_dump(exclude_unset=True)
    if nulls := [k for k, v in changes.items() if v is None]:
        raise ValidationFailed("These fields may not be null",
                               [{"field": k, "message": "may not be null"} for k in nulls])
    if "url" in changes:
        await targets.checked(changes["url"], bk.settings)
    changes = {k: v for k, v in changes.items() if v != current.get(k)}
    if not changes:
        return current
    now = utcnow()
    audit = {k: ("rotated" if k == "secret" else v) for k, v in changes.items()}
    if "secret" in changes:
        changes["secret_updated_at"] = now
    changes["updated_at"] = now

    async def op(s):
        result = await bk.mongo[WEBHOOKS].update_one({"_id": webhook_id}, {"$set": changes}, session=s)
        if result.matched_count:
            await record_audit(bk, action="webhook.update", user=actor, subject_type=SUBJECT, subject_id=webhook_id,
                               changes=audit, session=s)
        return result.matched_count

    if not await bk.transaction(op):
        raise _not_found(webhook_id)
    return await get_webhook(bk, webhook_id=webhook_id)


async def delete_webhook(bk: Backends, *, actor: User, webhook_id: str) -> None:
    """Delete a webhook and its delivery log (admins); deliveries not yet sent are not sent."""
    current = await get_webhook(bk, webhook_id=webhook_id)

    async def op(s):
        await bk.mongo[WEBHOOKS].delete_one({"_id": webhook_id}, session=s)
        await bk.mongo[DELIVERIES].delete_many({"webhook_id": webhook_id}, session=s)
        await record_audit(bk, action="webhook.delete", user=actor, subject_type=SUBJECT, subject_id=webhook_id,
                           changes={"url": current.get("url"), "events": current.get("events")}, session=s)

    await bk.transaction(op)


# --- the delivery log ------------------------------------------------------------------------------

async def list_deliveries(bk: Backends, *, user: User, webhook_id: str, params: Mapping[str, Any]) -> Page:
    """A page of one webhook's deliveries, newest first, with every attempt: those about subjects within the
    reader's clearance."""
    await get_webhook(bk, webhook_id=webhook_id)
    query = parse_list_params(DELIVERY_SPEC, params, default_size=bk.settings.page_size,
                              max_size=bk.settings.max_page_size)
    query.hint = DELIVERY_SPEC.index_for(query.sort, "webhook_id")
    return await fetch_page(bk.mongo[DELIVERIES], query,
                            base_filter=DELIVERY_LOG.visible(user, {"webhook_id": webhook_id}))


async def get_delivery(bk: Backends, *, user: User, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    return await DELIVERY_LOG.get(bk, delivery_id, user, where={"webhook_id": webhook_id})


async def redeliver(bk: Backends, *, user: User, webhook_id: str, delivery_id: str) -> dict[str, Any]:
    """Send a finished delivery again (same id and body, a fresh count of attempts); 409 while it is queued."""
    current = await get_delivery(bk, user=user, webhook_id=webhook_id, delivery_id=delivery_id)
    if current["status"] in QUEUED:
        raise Conflict("This delivery is still queued; it will be tried again at next_attempt_at",
                       {"status": current["status"]}, code="DELIVERY_QUEUED")
    now = utcnow()

    async def op(s):
        result = await bk.mongo[DELIVERIES].update_one(
            {"_id": delivery_id, "status": {"$nin": list(QUEUED)}},
            {"$set": {"status": DeliveryStatus.PENDING.value, "active": True, "next_attempt_at": now, "tries": 0,
                      "redelivered_at": now, "redelivered_by": user.id},
             "$unset": {"finished_at": "", "expires_at": ""}, "$inc": {"redeliveries": 1}}, session=s)
        if result.modified_count:
            await record_audit(bk, action="webhook.redeliver", user=user, subject_type=SUBJECT, subject_id=webhook_id,
                               changes={"delivery": delivery_id, "event": current["event"]}, session=s)
        return result.modified_count

    if not await bk.transaction(op):
        raise Conflict("This delivery was queued meanwhile", code="DELIVERY_QUEUED")
    return await get_delivery(bk, user=user, webhook_id=webhook_id, delivery_id=delivery_id)


async def ping(bk: Backends, *, actor: User, webhook_id: str) -> dict[str, Any]:
    """Queue a `ping` delivery to an active webhook (its subject: the webhook), to try the target and the
    signature; 409 when the webhook is inactive."""
    hook = await get_webhook(bk, webhook_id=webhook_id)
    if not hook.get("active", True):
        raise Conflict("The webhook is inactive; activate it to test it", {"field": "active"},
                       code="WEBHOOK_INACTIVE")
    doc = events.delivery_doc(webhook_id, PING, {"id": webhook_id, "message": "A test delivery"},
                              occurred_at=utcnow(), classification="PUBLIC")

    async def op(s):
        await bk.mongo[DELIVERIES].insert_one(doc, session=s)
        await record_audit(bk, action="webhook.test", user=actor, subject_type=SUBJECT, subject_id=webhook_id,
                           changes={"delivery": doc["_id"]}, session=s)

    await bk.transaction(op)
    return doc


# --- what incidents announce ---------------------------------------------------------------------------

async def _resolved(bk: Backends, incident: Mapping[str, Any], _prepared: Any, session) -> None:
    """In the transaction that resolves an incident: its `incident.resolved` deliveries."""
    await events.announce(bk, "incident.resolved", incident, session=session)


hooks.subscribe(Happened.RESOLVED, within=_resolved)

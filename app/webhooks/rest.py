"""REST routes under /api/knowledge/webhooks/ (admins): webhooks, their delivery log, redelivery and a test
delivery. The rules are in app/webhooks/service.py."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from app.backends import Backends
from app.http.resources import Call, Op, Resource
from app.listing import Page
from app.timefmt import isoz
from app.users.models import User
from app.webhooks import service
from app.webhooks.models import WebhookCreate, WebhookUpdate
from app.webhooks.outputs import Webhook, WebhookDelivery

BASE = "/api/knowledge/webhooks"


def webhook_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], "url": doc.get("url"), "events": doc.get("events") or [],
            "active": doc.get("active", True), "description": doc.get("description") or "",
            "has_secret": bool(doc.get("secret")), "secret_updated_at": isoz(doc.get("secret_updated_at")),
            "created_by": doc.get("created_by"), "created_at": isoz(doc.get("created_at")),
            "updated_at": isoz(doc.get("updated_at"))}


def attempt_json(a: dict[str, Any]) -> dict[str, Any]:
    return {"attempt": a.get("attempt", 0), "at": isoz(a.get("at")), "status": a.get("status"),
            "response_code": a.get("response_code"), "duration_ms": a.get("duration_ms") or 0,
            "error": a.get("error"), "url": a.get("url")}


def delivery_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], **{k: doc.get(k) for k in ("webhook_id", "event", "status", "subject_type",
                                                          "subject_id", "data_classification")},
            **{k: isoz(doc.get(k)) for k in ("occurred_at", "created_at", "next_attempt_at", "finished_at")},
            "attempt_count": doc.get("attempt_count", 0), "redeliveries": doc.get("redeliveries", 0),
            "attempts": [attempt_json(a) for a in doc.get("attempts") or []], "payload": doc.get("payload") or {}}


async def _webhooks(bk: Backends, user: User, docs: list[dict]) -> list[dict]:
    return [webhook_json(d) for d in docs]


async def _deliveries(bk: Backends, user: User, docs: list[dict]) -> list[dict]:
    return [delivery_json(d) for d in docs]


async def list_webhooks(call: Call) -> Page:
    """List the webhooks (admins), newest first"""
    return await service.list_webhooks(call.bk, params=call.params)


async def create(call: Call) -> dict:
    """Register a webhook (admins)

    The URL must be http(s), with no credentials, and resolve only to public addresses (loopback and private
    ranges only where the settings allow them; link-local and cloud metadata never): 400 otherwise, with the
    reason. The secret signs every delivery and is never answered. At most 100 webhooks (409)."""
    return await call.one(await service.create_webhook(call.bk, actor=call.user, data=call.body))


async def detail(call: Call) -> dict:
    """Get one webhook (admins)"""
    return await call.one(await service.get_webhook(call.bk, webhook_id=call.key))


async def change(call: Call) -> dict:
    """Change a webhook's url, events, secret (rotation), active or description (admins)"""
    return await call.one(await service.update_webhook(call.bk, actor=call.user, webhook_id=call.key, data=call.body))


async def delete(call: Call) -> Response:
    """Delete a webhook and its delivery log (admins)"""
    await service.delete_webhook(call.bk, actor=call.user, webhook_id=call.key)
    return Response(status_code=204)


async def test(call: Call) -> dict:
    """Send a test delivery (event `ping`) to an active webhook (admins); 409 when it is inactive"""
    return delivery_json(await service.ping(call.bk, actor=call.user, webhook_id=call.key))


def _webhook_id(call: Call) -> str:
    return call.request.path_params["id"]


async def list_deliveries(call: Call) -> Page:
    """A webhook's delivery log, newest first, every attempt with its status, response code, duration and error

    Only the deliveries about subjects within the caller's clearance."""
    return await service.list_deliveries(call.bk, user=call.user, webhook_id=_webhook_id(call), params=call.params)


async def delivery(call: Call) -> dict:
    """Get one delivery of a webhook, with every attempt (admins)"""
    return await call.one(await service.get_delivery(call.bk, user=call.user, webhook_id=_webhook_id(call),
                                                     delivery_id=call.key))


async def redeliver(call: Call) -> dict:
    """Send a finished delivery again: same id and body, a fresh count of attempts (admins); 409 while queued"""
    return await call.one(await service.redeliver(call.bk, user=call.user, webhook_id=_webhook_id(call),
                                                  delivery_id=call.key))


MANAGE, DELIVERIES = service.MANAGE_RULE, service.DELIVERY_RULE
RESOURCES = [
    Resource(base=BASE, serialize=_webhooks, tag="webhooks",
             description="Outbound webhooks (admins): signed JSON deliveries of incident.resolved, "
                         "postmortem.published, action_item.created, action_item.overdue, recommendation.generated "
                         "and pattern.validated, sent by the workers, retried with back-off, every attempt logged.",
             collection={"GET": Op(list_webhooks, MANAGE, response=Webhook, listing=service.LIST_SPEC),
                         "POST": Op(create, MANAGE, WebhookCreate, status=201, response=Webhook, errors=(409,))},
             item={"GET": Op(detail, MANAGE, response=Webhook),
                   "PATCH": Op(change, MANAGE, WebhookUpdate, response=Webhook),
                   "DELETE": Op(delete, MANAGE, status=204)},
             actions={"test": {"POST": Op(test, MANAGE, status=202, response=WebhookDelivery, errors=(409,))}}),
    Resource(base=f"{BASE}/{{id}}/deliveries", serialize=_deliveries, tag="webhook-deliveries", key="delivery_id",
             description="A webhook's delivery log (admins): every attempt, newest delivery first; redelivery.",
             collection={"GET": Op(list_deliveries, DELIVERIES, response=WebhookDelivery,
                                   listing=service.DELIVERY_SPEC)},
             item={"GET": Op(delivery, DELIVERIES, response=WebhookDelivery)},
             actions={"redeliver": {"POST": Op(redeliver, DELIVERIES, status=202, response=WebhookDelivery,
                                               errors=(409,))}}),
]

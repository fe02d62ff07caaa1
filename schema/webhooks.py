"""Outbound webhooks in GraphQL (admins): `webhooks`, `webhook`, `webhookDeliveries` and the mutations that
register, change, delete and test webhooks and redeliver a delivery. Resolvers only call app.webhooks.service;
the secret is never answered (`hasSecret`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app.permissions import permit
from app.users.models import Classification
from app.webhooks import service
from app.webhooks.events import DeliveryStatus
from app.webhooks.models import WebhookCreate, WebhookUpdate
from schema.common import ClassificationEnum, Paginated, list_params, paginated, validate
from schema.context import Info
from schema.inputs import input_type
from schema.errors import result, typed_errors

DeliveryStatusEnum = strawberry.enum(DeliveryStatus, name="WebhookDeliveryStatus")
MANAGE, DELIVERIES = service.MANAGE_RULE, service.DELIVERY_RULE


@strawberry.type(description="An outbound webhook (the REST `/api/knowledge/webhooks/` item); its secret is never "
                             "answered.")
class Webhook:
    id: strawberry.ID
    url: str
    events: list[str] = strawberry.field(description="incident.resolved, postmortem.published, action_item.created, "
                                                     "action_item.overdue, recommendation.generated, "
                                                     "pattern.validated")
    active: bool
    description: str
    has_secret: bool
    secret_updated_at: datetime | None
    created_by: str | None = strawberry.field(description="The admin who registered it: deliveries carry only what "
                                                          "they may see.")
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "Webhook":
        return cls(id=d["_id"], url=d.get("url") or "", events=d.get("events") or [], active=d.get("active", True),
                   description=d.get("description") or "", has_secret=bool(d.get("secret")),
                   secret_updated_at=d.get("secret_updated_at"), created_by=d.get("created_by"),
                   created_at=d.get("created_at"), updated_at=d.get("updated_at"))


@strawberry.type(description="One attempt to deliver (or the decision to skip).")
class WebhookDeliveryAttempt:
    attempt: int
    at: datetime | None
    status: str = strawberry.field(description="delivered, failed or skipped")
    response_code: int | None
    duration_ms: int
    error: str | None
    url: str | None

    @classmethod
    def from_doc(cls, a: dict[str, Any]) -> "WebhookDeliveryAttempt":
        return cls(attempt=a.get("attempt", 0), at=a.get("at"), status=a.get("status") or "",
                   response_code=a.get("response_code"), duration_ms=a.get("duration_ms") or 0,
                   error=a.get("error"), url=a.get("url"))


@strawberry.type(description="One event sent (or to be sent) to one webhook, with every attempt.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="Its `delivery_id` and `X-Delivery-Id`.")
    webhook_id: strawberry.ID
    event: str
    status: DeliveryStatusEnum
    subject_type: str
    subject_id: str
    data_classification: ClassificationEnum
    occurred_at: datetime | None
    created_at: datetime | None
    next_attempt_at: datetime | None
    finished_at: datetime | None
    attempt_count: int
    redeliveries: int
    attempts: list[WebhookDeliveryAttempt]
    payload: JSON = strawberry.field(description="The JSON body sent (snake_case keys, as sent).")

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "WebhookDelivery":
        return cls(id=d["_id"], webhook_id=d.get("webhook_id") or "", event=d.get("event") or "",
                   status=DeliveryStatus(d.get("status") or DeliveryStatus.PENDING.value),
                   subject_type=d.get("subject_type") or "", subject_id=d.get("subject_id") or "",
                   data_classification=Classification(d.get("data_classification") or "INTERNAL"),
                   occurred_at=d.get("occurred_at"), created_at=d.get("created_at"),
                   next_attempt_at=d.get("next_attempt_at"), finished_at=d.get("finished_at"),
                   attempt_count=d.get("attempt_count", 0), redeliveries=d.get("redeliveries", 0),
                   attempts=[WebhookDeliveryAttempt.from_doc(a) for a in d.get("attempts") or []],
                   payload=d.get("payload") or {})


CreateWebhookInput = input_type(WebhookCreate, "CreateWebhookInput", description=(
    "A webhook to register (the REST body of POST /api/knowledge/webhooks/)."))


UpdateWebhookInput = input_type(WebhookUpdate, "UpdateWebhookInput", partial=True, description=(
    "What changes on a webhook (PATCH /api/knowledge/webhooks/{id}/); a new secret rotates it."))


@strawberry.type
class DeletedWebhook:
    id: strawberry.ID


WebhookResult = result("WebhookResult", Webhook)
DeleteWebhookResult = result("DeleteWebhookResult", DeletedWebhook)
DeliveryResult = result("WebhookDeliveryResult", WebhookDelivery)


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="The webhooks (admins), newest first, paginated like the REST list.")
    @permit(MANAGE)
    async def webhooks(self, info: Info, active: bool | None = None, event: str | None = None,
                       ordering: str | None = None, page: int = 1, page_size: int = 20) -> Paginated[Webhook]:
        params = list_params(active=active, event=event, ordering=ordering, page=page, page_size=page_size)
        return paginated(await service.list_webhooks(info.context.backends, params=params), Webhook.from_doc)

    @strawberry.field(description="One webhook (admins).")
    @permit(MANAGE)
    async def webhook(self, info: Info, id: strawberry.ID) -> Webhook:
        return Webhook.from_doc(await service.get_webhook(info.context.backends, webhook_id=id))

    @strawberry.field(description="A webhook's delivery log, newest first, with every attempt (admins; only the "
                                  "deliveries about subjects within the caller's clearance).")
    @permit(DELIVERIES)
    async def webhook_deliveries(self, info: Info, webhook_id: strawberry.ID,
                                 status: list[DeliveryStatusEnum] | None = None, event: str | None = None,
                                 page: int = 1, page_size: int = 20) -> Paginated[WebhookDelivery]:
        params = list_params(status=status, event=event, page=page, page_size=page_size)
        return paginated(await service.list_deliveries(info.context.backends, user=info.context.user,
                                                       webhook_id=webhook_id, params=params), WebhookDelivery.from_doc)


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(description="Register a webhook (admins): its target is checked (private, loopback, "
                                     "link-local and metadata addresses refused).")
    @typed_errors(role=MANAGE)
    async def create_webhook(self, info: Info, input: CreateWebhookInput) -> WebhookResult:
        data = validate(WebhookCreate, input)
        return Webhook.from_doc(await service.create_webhook(info.context.backends, actor=info.context.user,
                                                             data=data))

    @strawberry.mutation(description="Change a webhook's url, events, secret (rotation), active or description "
                                     "(admins).")
    @typed_errors(role=MANAGE)
    async def update_webhook(self, info: Info, id: strawberry.ID, input: UpdateWebhookInput) -> WebhookResult:
        data = validate(WebhookUpdate, input)
        return Webhook.from_doc(await service.update_webhook(info.context.backends, actor=info.context.user,
                                                             webhook_id=id, data=data))

    @strawberry.mutation(description="Delete a webhook and its delivery log (admins).")
    @typed_errors(role=MANAGE)
    async def delete_webhook(self, info: Info, id: strawberry.ID) -> DeleteWebhookResult:
        await service.delete_webhook(info.context.backends, actor=info.context.user, webhook_id=id)
        return DeletedWebhook(id=id)

    @strawberry.mutation(description="Queue a test delivery (event `ping`) to an active webhook (admins).")
    @typed_errors(role=MANAGE)
    async def test_webhook(self, info: Info, id: strawberry.ID) -> DeliveryResult:
        return WebhookDelivery.from_doc(await service.ping(info.context.backends, actor=info.context.user,
                                                           webhook_id=id))

    @strawberry.mutation(description="Send a finished delivery again: same id and body, a fresh count of attempts "
                                     "(admins).")
    @typed_errors(role=DELIVERIES)
    async def redeliver_webhook_delivery(self, info: Info, webhook_id: strawberry.ID,
                                         delivery_id: strawberry.ID) -> DeliveryResult:
        return WebhookDelivery.from_doc(await service.redeliver(info.context.backends, user=info.context.user,
                                                                webhook_id=webhook_id, delivery_id=delivery_id))

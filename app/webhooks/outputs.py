"""What the webhook routes answer (app/webhooks/rest.py), as output models for the OpenAPI document."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.outputs import JsonObject, Output, Timestamp, examples
from app.users.models import Classification
from app.webhooks.events import DeliveryStatus

_WEBHOOK = {
    "id": "5b0f3c8e-2d4a-4f1b-9c6e-7a8d9e0f1a2b", "url": "https://automation.example.com/hooks/incidents",
    "events": ["incident.resolved", "action_item.created"], "active": True, "description": "Runbook automation",
    "has_secret": True, "secret_updated_at": "2026-03-19T15:20:00Z",
    "created_by": "9a3e1c2b-7d4f-4e5a-8b6c-1d2e3f4a5b6c", "created_at": "2026-03-19T15:20:00Z",
    "updated_at": "2026-03-19T15:20:00Z",
}
_ATTEMPT = {"attempt": 1, "at": "2026-03-19T15:42:07.118000Z", "status": "failed", "response_code": 500,
            "duration_ms": 41, "error": "HTTP 500", "url": "https://automation.example.com/hooks/incidents"}
_PAYLOAD = {"event": "incident.resolved", "delivery_id": "0b7f8f0e-5d7a-4c55-9a53-2f0d3c1e9a41",
            "occurred_at": "2026-03-19T15:42:07.011000Z", "subject_type": "incident",
            "subject": {"id": "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f", "name": "INC-2026-0042",
                        "title": "Database connection timeout", "severity": "HIGH", "status": "RESOLVED",
                        "resolution": "Restarted the pool", "data_classification": "INTERNAL"}}
_DELIVERY = {
    "id": "0b7f8f0e-5d7a-4c55-9a53-2f0d3c1e9a41", "webhook_id": "5b0f3c8e-2d4a-4f1b-9c6e-7a8d9e0f1a2b",
    "event": "incident.resolved", "status": "delivered", "subject_type": "incident",
    "subject_id": "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f", "data_classification": "INTERNAL",
    "occurred_at": "2026-03-19T15:42:07.011000Z", "created_at": "2026-03-19T15:42:07.011000Z", "next_attempt_at": None,
    "finished_at": "2026-03-19T15:42:12.300000Z", "attempt_count": 2, "redeliveries": 0,
    "attempts": [_ATTEMPT, {**_ATTEMPT, "attempt": 2, "at": "2026-03-19T15:42:12.260000Z", "status": "delivered",
                            "response_code": 204, "duration_ms": 38, "error": None}],
    "payload": _PAYLOAD,
}


class Webhook(Output):
    """An outbound webhook: where its events are POSTed. Its secret is never answered (`has_secret`)."""

    model_config = examples(_WEBHOOK)

    id: str
    url: str = Field(description="Where deliveries are POSTed (http:// or https://)")
    events: list[str] = Field(description="The events it receives: incident.resolved, postmortem.published, "
                                          "action_item.created, action_item.overdue, recommendation.generated, "
                                          "pattern.validated")
    active: bool = Field(description="false: no delivery is made for it (those queued are skipped)")
    description: str
    has_secret: bool = Field(description="Always true: every delivery is signed with its secret, which is never "
                                         "answered")
    secret_updated_at: Timestamp | None = Field(description="When the secret was set or last rotated")
    created_by: str | None = Field(description="The admin who registered it (user id): deliveries carry only what "
                                               "they may see")
    created_at: Timestamp
    updated_at: Timestamp


class DeliveryAttempt(Output):
    """One attempt to deliver (or the decision to skip)."""

    attempt: int = Field(description="1 for the first attempt of the delivery, counting redeliveries")
    at: Timestamp
    status: Literal["delivered", "failed", "skipped"]
    response_code: int | None = Field(description="The HTTP status answered (null: no answer — refused, "
                                                  "unreachable, timed out, or skipped)")
    duration_ms: int = Field(description="From resolving the host to the answer's status line")
    error: str | None = Field(description="Why it failed or was skipped (null when delivered)")
    url: str | None = Field(description="The URL it was sent to")


class WebhookDelivery(Output):
    """One event sent (or to be sent) to one webhook, with every attempt."""

    model_config = examples(_DELIVERY)

    id: str = Field(description="The delivery id: `delivery_id` in the body and `X-Delivery-Id` (the same on a "
                                "retry or a redelivery, so receivers can drop duplicates)")
    webhook_id: str
    event: str
    status: DeliveryStatus = Field(description="pending, retrying (at next_attempt_at), delivered, failed (every "
                                               "attempt failed), skipped (not sent: see the attempt's error)")
    subject_type: str
    subject_id: str
    data_classification: Classification = Field(description="The subject's, when the event happened")
    occurred_at: Timestamp
    created_at: Timestamp
    next_attempt_at: Timestamp | None = Field(description="When it is tried next (null once finished)")
    finished_at: Timestamp | None
    attempt_count: int
    redeliveries: int
    attempts: list[DeliveryAttempt] = Field(description="Oldest first (the last 50)")
    payload: JsonObject = Field(description="The JSON body sent: event, delivery_id, occurred_at, subject_type, "
                                            "subject")

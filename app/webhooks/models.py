"""Webhook inputs: a registration (POST) and a change (PATCH: url, events, secret, active, description)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from app.inputs import InputModel
from app.webhooks.events import EVENTS
from app.webhooks.targets import MAX_URL

SECRET_MIN, SECRET_MAX = 8, 256


def _events(values: list[str]) -> list[str]:
    unknown = [v for v in values if v not in EVENTS]
    if unknown:
        raise ValueError(f"unknown event {unknown[0]!r}; the events are {', '.join(EVENTS)}")
    return list(dict.fromkeys(values))


Events = Annotated[list[str], AfterValidator(_events)]
# kept exactly as sent (never trimmed: the receiver signs with the same bytes)
Secret = Annotated[str, StringConstraints(strip_whitespace=False, min_length=SECRET_MIN, max_length=SECRET_MAX)]


class WebhookCreate(InputModel):
    """A webhook to register (admins): where to POST, which events, the secret that signs each delivery."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"url": "https://automation.example.com/hooks/incidents", "events": ["incident.resolved",
                                                                             "action_item.created"],
         "secret": "a long random string", "active": True, "description": "Runbook automation"}]})
    url: str = Field(min_length=1, max_length=MAX_URL, description="http:// or https://; see the target rules")
    events: Events = Field(min_length=1, max_length=len(EVENTS), description=f"Any of {', '.join(EVENTS)}")
    secret: Secret = Field(description="Signs every delivery (HMAC-SHA256); never answered back")
    active: bool = True
    description: str = Field("", max_length=500)


class WebhookUpdate(InputModel):
    """PATCH: only the fields sent change; a new `secret` rotates it (deliveries not yet sent are signed with it)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"active": False}, {"secret": "the next long random string"}]})
    url: str | None = Field(None, min_length=1, max_length=MAX_URL)
    events: Events | None = Field(None, min_length=1, max_length=len(EVENTS))
    secret: Secret | None = None
    active: bool | None = None
    description: str | None = Field(None, max_length=500)

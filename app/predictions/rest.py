"""REST: `GET /api/v1/incidents/{name}/predictions/` (app/predictions/service.py has the rules). Declared here,
not in app/incidents/rest.py: predictions build on incidents and learning patterns, and incidents import
neither."""

from __future__ import annotations

from typing import Any


from app.backends import Backends
from app.http.resources import Call, Op, Resource
from app.predictions import service
from app.predictions.outputs import Prediction
from app.users.models import User


async def _serialize(bk: Backends, user: User, docs: list[dict]) -> list[dict]:
    return docs


async def predictions(call: Call) -> dict[str, Any]:
    """Predict an incident's likely root-cause categories and time to resolve, from its resolved look-alikes"""
    return await service.predict(call.bk, name=call.key, user=call.user)


RESOURCES = [Resource(base="/api/v1/incidents", serialize=_serialize, tag="incidents", key="name",
                      actions={"predictions": {"GET": Op(predictions, rate="search", response=Prediction)}})]

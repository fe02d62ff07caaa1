"""REST: `GET /api/knowledge/kpis/` — KPIs for dashboards (app/kpis/service.py has the rules)."""

from __future__ import annotations

from typing import Any


from app.backends import Backends
from app.http.resources import Call, Op, Resource
from app.kpis import service
from app.kpis.outputs import Kpis
from app.users.models import User

async def _serialize(bk: Backends, user: User, docs: list[dict]) -> list[dict]:
    return docs


async def kpis(call: Call) -> dict[str, Any]:
    """KPIs over the last weeks, overall and per week, over what the caller may see"""
    return await service.kpis(call.bk, user=call.user, weeks=call.arg("weeks"), team=call.arg("team"),
                              namespace=call.arg("namespace"))


RESOURCES = [Resource(base="/api/knowledge/kpis", serialize=_serialize, tag="kpis",
                      description="Figures for dashboards: postmortem completion, time to publish, action-item "
                                  "closure, knowledge-base usage, recommendation acceptance, incidents, rising "
                                  "learning patterns.",
                      collection={"GET": Op(kpis, rate="search", response=Kpis, query=service.ARGS)})]

"""KPIs in GraphQL: `kpis(weeks:, team:, namespace:)`, the REST figures (app/kpis/outputs.py) as types made
from the same output models, so the two cannot drift. Resolvers only call app/kpis/service.py."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.experimental.pydantic import type as pydantic_type
from strawberry.scalars import JSON

from app.inputs import checked
from app.kpis import outputs, service
from schema.context import Info


@pydantic_type(model=outputs.KpiOverall, all_fields=True,
               description="The whole window's figures (null rates: nothing to divide by).")
class KpiOverall:
    incidents_by_severity: JSON


@pydantic_type(model=outputs.KpiWeek, all_fields=True, description="One week's figures (Monday 00:00 UTC).")
class KpiWeek:
    incidents_by_severity: JSON


@pydantic_type(model=outputs.RisingPattern, all_fields=True)
class RisingPattern:
    pass


@strawberry.type(description="KPIs over the last weeks, overall and per week, over what the caller may see.")
class Kpis:
    weeks: int
    since: str
    until: str
    team: str | None
    namespace: str | None
    overall: KpiOverall
    per_week: list[KpiWeek]
    rising_patterns: list[RisingPattern]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Kpis":
        return cls(weeks=d["weeks"], since=d["since"], until=d["until"], team=d["team"], namespace=d["namespace"],
                   overall=KpiOverall.from_pydantic(outputs.KpiOverall.model_validate(d["overall"])),
                   per_week=[KpiWeek.from_pydantic(outputs.KpiWeek.model_validate(x)) for x in d["per_week"]],
                   rising_patterns=[RisingPattern.from_pydantic(outputs.RisingPattern.model_validate(x))
                                    for x in d["rising_patterns"]])


@strawberry.type
class KpiQuery:
    @strawberry.field(description="KPIs for dashboards over the last `weeks` weeks (1-104), optionally of one team "
                                  "or namespace, like GET /api/knowledge/kpis/.")
    async def kpis(self, info: Info, weeks: int = 12, team: str | None = None,
                   namespace: str | None = None) -> Kpis:
        args = checked(service.ARGS, weeks=weeks, team=team, namespace=namespace)
        return Kpis.from_dict(await service.kpis(info.context.backends, user=info.context.user, **args))

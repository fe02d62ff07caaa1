"""What `GET /api/knowledge/kpis/` answers (app/kpis/rest.py), for the OpenAPI document."""

from __future__ import annotations

from pydantic import Field

from app.outputs import Output, Timestamp, examples

_FIGURES = {
    "incidents": 14, "incidents_by_severity": {"CRITICAL": 2, "HIGH": 5, "MEDIUM": 6, "LOW": 1},
    "mean_time_to_detect": 540, "mean_time_to_resolve": 7260, "incidents_resolved": 12,
    "postmortems_due": 6, "postmortems_published_on_time": 4, "postmortem_completion_rate": 0.6667,
    "postmortems_published": 5, "median_time_to_publish": 259200, "action_items": 21, "action_items_closed": 9,
    "action_item_closure_rate": 0.4286, "kb_views": 310, "kb_searches": 120, "kb_zero_result_searches": 9,
    "kb_zero_result_rate": 0.075, "recommendations_generated": 40, "recommendations_applied": 11,
    "recommendation_acceptance_rate": 0.275, "effectiveness_ratings": 7, "mean_effectiveness_rating": 3.86}


class KpiFigures(Output):
    """The figures of one week, or of the whole window. A rate with nothing to divide by is null (no data)."""

    model_config = examples(_FIGURES)

    incidents: int = Field(description="Incidents detected")
    incidents_by_severity: dict[str, int]
    mean_time_to_detect: int | None = Field(description="Seconds from an incident's first timeline event to its "
                                                        "detection (those with an earlier event)")
    mean_time_to_resolve: int | None = Field(description="Seconds from detection to resolution, of those resolved")
    incidents_resolved: int
    postmortems_due: int = Field(description="Postmortems whose due date fell in the period (and has passed)")
    postmortems_published_on_time: int
    postmortem_completion_rate: float | None = Field(description="Published by their due date / due")
    postmortems_published: int
    median_time_to_publish: int | None = Field(description="Seconds from the incident's resolution (else the "
                                                           "postmortem's creation) to publication")
    action_items: int = Field(description="Action items of the postmortems written in the period")
    action_items_closed: int
    action_item_closure_rate: float | None = Field(description="DONE or WONT_DO / action items")
    kb_views: int
    kb_searches: int
    kb_zero_result_searches: int
    kb_zero_result_rate: float | None
    recommendations_generated: int
    recommendations_applied: int
    recommendation_acceptance_rate: float | None = Field(description="Applied / generated")
    effectiveness_ratings: int
    mean_effectiveness_rating: float | None = Field(description="1-5, of the ratings given in the period")


class KpiOverall(KpiFigures):
    """The whole window's figures, and the action items overdue now."""

    model_config = examples({**_FIGURES, "overdue_action_items": 3})

    overdue_action_items: int = Field(description="Open action items past their due date, now")


class KpiWeek(KpiFigures):
    """One week's figures (Monday 00:00 UTC)."""

    model_config = examples({"week_start": "2026-11-30T00:00:00Z", **_FIGURES})

    week_start: Timestamp


class RisingPattern(Output):
    """A learning pattern whose source incidents came more often in the window's second half."""

    model_config = examples({"id": "uuid", "name": "Connection pool exhaustion", "pattern_type": "ROOT_CAUSE",
                             "is_validated": True, "earlier": 1, "recent": 4})

    id: str
    name: str
    pattern_type: str | None
    is_validated: bool
    earlier: int = Field(description="Its source incidents detected in the window's first half")
    recent: int = Field(description="… and in its second half")


class Kpis(Output):
    """KPIs over the last `weeks` weeks, overall and per week, over what the caller may see."""

    model_config = examples({"weeks": 12, "since": "2026-09-14T00:00:00Z", "until": "2026-12-05T23:10:00Z",
                             "team": None, "namespace": None, "overall": {**_FIGURES, "overdue_action_items": 3},
                             "per_week": [{"week_start": "2026-11-30T00:00:00Z", **_FIGURES}],
                             "rising_patterns": [{"id": "uuid", "name": "Connection pool exhaustion",
                                                  "pattern_type": "ROOT_CAUSE", "is_validated": True,
                                                  "earlier": 1, "recent": 4}]})

    weeks: int
    since: Timestamp
    until: Timestamp
    team: str | None
    namespace: str | None
    overall: KpiOverall
    per_week: list[KpiWeek]
    rising_patterns: list[RisingPattern]

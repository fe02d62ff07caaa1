"""KPIs for dashboards (GET /api/knowledge/kpis/, GraphQL kpis): figures over a namespace the test fills, each
checked against what the test made; classification applies to every figure; bad parameters are 400s."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.kpis.service import week_start
from app.timefmt import isoz, utcnow
from tests.conftest import unique
from tests.incidents.test_graphql import gql

KPIS = "/api/knowledge/kpis/"


@pytest.fixture(scope="module")
async def team(client, admin, bk):
    """A namespace and team with, this week: 3 MEDIUM incidents (one RESTRICTED; not HIGH, whose resolution sets
    off a worker's postmortem draft and recommendations, whose action items and due dates would count too, or
    not, depending on when the worker gets to them) detected 10 minutes after their first
    event and resolved 2 hours after detection; a postmortem due yesterday published on time, one due yesterday
    not published; 4 action items, 1 done; 2 recommendations, 1 applied and rated 4."""
    ns, tm = unique("kpins"), unique("kpiteam")
    now = utcnow()
    names = []
    for i, level in enumerate(("INTERNAL", "INTERNAL", "RESTRICTED")):
        detected = now - timedelta(hours=3 + i)
        r = await client.post("/api/v1/incidents/", headers=admin, json={
            "title": f"KPI incident {i}", "namespace": ns, "affected_teams": [tm], "severity": "MEDIUM",
            "data_classification": level, "detected_at": isoz(detected),
            "timeline": [{"timestamp": isoz(detected - timedelta(minutes=10)), "type": "Detection", "source": "pager",
                          "message": "latency alert"}]})
        assert r.status_code == 201, r.text
        names.append(r.json())
        r = await client.post(f"/api/v1/incidents/{r.json()['name']}/resolve/", headers=admin, json={
            "resolution": "rolled back", "resolved_at": isoz(detected + timedelta(hours=2))})
        assert r.status_code == 200, r.text
    pms = []
    for i in range(2):
        r = await client.post("/api/knowledge/postmortems/", headers=admin, json={
            "incident": names[i]["id"], "title": f"KPI postmortem {i}", "affected_teams": [tm],
            "due_date": isoz(now - timedelta(days=1) if now - timedelta(days=1) >= week_start(now) else now),
            "action_items": [{"title": f"fix {i}.{j}", "status": "DONE" if (i, j) == (0, 0) else "OPEN",
                              "due_date": isoz(now - timedelta(hours=1))} for j in range(2)]})
        assert r.status_code == 201, r.text
        pms.append(r.json())
    # the first one published before its due date: stamp it as the workflow would
    await bk.mongo.postmortems.update_one({"_id": pms[0]["id"]}, {"$set": {
        "status": "PUBLISHED", "published_at": now - timedelta(days=1, hours=1)
        if now - timedelta(days=1) >= week_start(now) else now - timedelta(minutes=1)}})
    for i, applied in ((0, True), (1, False)):
        await bk.mongo.recommendations.insert_one({
            "_id": unique("rec"), "incident": names[i]["id"], "recommendation_type": "SOLUTION", "target": unique("t"),
            "data_classification": "INTERNAL", "created_at": now, "is_applied": applied,
            "effectiveness_rating": 4 if applied else None, "rated_at": now if applied else None})
    return {"namespace": ns, "team": tm}


async def test_the_figures_are_what_happened(client, admin, team, bk):
    r = await client.get(KPIS, headers=admin, params={"weeks": 2, "namespace": team["namespace"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["weeks"] == 2 and len(body["per_week"]) == 2 and body["namespace"] == team["namespace"]
    overall, this_week = body["overall"], body["per_week"][-1]
    assert overall["incidents"] == 3 and overall["incidents_by_severity"]["MEDIUM"] == 3
    assert overall["mean_time_to_detect"] == 600 and overall["mean_time_to_resolve"] == 7200
    assert overall["postmortems_due"] in (0, 2)  # due yesterday: in the window unless the week began today
    if overall["postmortems_due"]:
        assert overall["postmortems_published_on_time"] == 1 and overall["postmortem_completion_rate"] == 0.5
    assert overall["action_items"] == 4 and overall["action_items_closed"] == 1
    assert overall["action_item_closure_rate"] == 0.25 and overall["overdue_action_items"] == 3
    # the two made here, and any a worker generated meanwhile for these incidents (resolved ones get some)
    ids = [d["_id"] async for d in bk.mongo.incidents.find({"namespace": team["namespace"]}, {"_id": 1})]
    made = await bk.mongo.recommendations.count_documents({"incident": {"$in": ids}})
    applied = await bk.mongo.recommendations.count_documents({"incident": {"$in": ids}, "is_applied": True})
    generated = overall["recommendations_generated"]
    assert 2 <= generated <= made and overall["recommendations_applied"] == applied == 1
    assert overall["recommendation_acceptance_rate"] == round(1 / generated, 4)
    assert overall["mean_effectiveness_rating"] == 4.0
    assert overall["postmortems_published"] == 1 and overall["median_time_to_publish"] is not None
    assert sum(w["incidents"] for w in body["per_week"]) == 3 and this_week["week_start"] == isoz(week_start(utcnow()))
    empty = next((w for w in body["per_week"] if not w["postmortems_due"]), None)
    assert empty is None or empty["postmortem_completion_rate"] is None  # nothing due: no data, not 0


async def test_classification_applies_to_every_figure(client, viewer, admin, team):
    mine = (await client.get(KPIS, headers=viewer, params={"weeks": 2, "namespace": team["namespace"]})).json()
    assert mine["overall"]["incidents"] == 2 and mine["overall"]["mean_time_to_resolve"] == 7200
    everything = (await client.get(KPIS, headers=admin, params={"weeks": 2, "namespace": team["namespace"]})).json()
    assert everything["overall"]["incidents"] == 3


async def test_a_team_cut_and_graphql_agree(client, admin, team):
    rest = (await client.get(KPIS, headers=admin, params={"weeks": 4, "team": team["team"]})).json()
    assert rest["team"] == team["team"] and rest["overall"]["incidents"] == 3
    out = await gql(client, admin, 'query($t: String) { kpis(weeks: 4, team: $t) { weeks team overall { incidents '
                                   'actionItemClosureRate overdueActionItems incidentsBySeverity } perWeek { weekStart '
                                   'incidents } risingPatterns { name recent } } }', t=team["team"])
    kpis = out["data"]["kpis"]
    assert kpis["overall"]["incidents"] == 3 and kpis["overall"]["actionItemClosureRate"] == 0.25
    assert kpis["overall"]["overdueActionItems"] == 3 and len(kpis["perWeek"]) == 4
    assert kpis["overall"]["incidentsBySeverity"]["MEDIUM"] == 3


async def test_bad_parameters_are_400s(client, admin):
    for params in ({"weeks": 0}, {"weeks": 105}, {"weeks": "x"}, {"team": "t" * 101}):
        r = await client.get(KPIS, headers=admin, params=params)
        assert r.status_code == 400 and r.json()["code"] == "INVALID_PARAMETER", (params, r.text)
    out = await gql(client, admin, "{ kpis(weeks: 0) { weeks } }")
    assert out["errors"][0]["extensions"]["code"] == "INVALID_PARAMETER"
    assert (await client.get(KPIS)).status_code == 401

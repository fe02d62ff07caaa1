"""Issue 16 on the real stack: a pattern without actions is not offered for validation (409, typed GraphQL error),
the weekly trend counts when incidents happened, a mining run keeps groups with no recorded fix out and
`--days` picks the recurring causes that occurred in the window, with their history."""

from __future__ import annotations

from datetime import timedelta

from app.patterns import runs
from app.timefmt import utcnow
from tests.conftest import unique
from tests.incidents.test_graphql import gql
from tests.patterns.test_rest import BASE, pattern
from tests.postmortems.test_batch import own  # noqa: F401 - the fixture
from tests.postmortems.test_rest import new_incident

PLACEHOLDER = "The public postmortem does not say what restored service: https://status.example/pm"


async def test_a_pattern_without_actions_is_not_offered_for_validation(client, admin):
    p = await pattern(client, admin, actions=[])
    r = await client.post(f"{BASE}{p['id']}/validate/", headers=admin, json={"validation_notes": "ok"})
    assert r.status_code == 409 and r.json()["code"] == "PATTERN_HAS_NO_ACTIONS", r.text
    assert (await client.get(f"{BASE}{p['id']}/", headers=admin)).json()["is_validated"] is False
    out = await gql(client, admin, """mutation($id: ID!) { validateLearningPattern(id: $id, validationNotes: "x") {
        __typename ... on UserError { code } } }""", id=p["id"])
    assert out["data"]["validateLearningPattern"]["code"] == "PATTERN_HAS_NO_ACTIONS", out
    r = await client.patch(f"{BASE}{p['id']}/", headers=admin, json={"actions": ["Raise the pool size to 200"]})
    assert r.status_code == 200
    r = await client.post(f"{BASE}{p['id']}/validate/", headers=admin, json={"validation_notes": "ok"})
    assert r.status_code == 200 and r.json()["is_validated"] is True


async def test_the_weekly_trend_counts_when_incidents_happened_not_when_they_were_imported(client, admin, viewer):
    now = utcnow()
    three_weeks = await new_incident(client, admin, detected_at=(now - timedelta(weeks=3)).isoformat())
    long_ago = await new_incident(client, admin, detected_at=(now - timedelta(days=800)).isoformat())
    canonical = await new_incident(client, admin, detected_at=(now - timedelta(weeks=3)).isoformat())
    p = await pattern(client, admin, name=unique("Trend"),
                      source_incidents=[three_weeks["id"], long_ago["id"], canonical["id"]])
    stats = (await client.get(BASE + "statistics/", headers=viewer, params={"weeks": 12})).json()
    mine = next(t for t in stats["weekly_occurrences"] if t["pattern"] == p["id"])
    at = now - timedelta(weeks=3)
    monday = (at - timedelta(days=at.weekday())).date().isoformat()
    assert mine["weeks"] == [{"week": monday, "occurrences": 2}], mine  # imported today, happened 3 weeks ago;
    # the 800-day-old one is outside the window


async def _incident(bk, user, title, cause, *, resolved_days_ago: float, resolution: str, **fields):
    from app.incidents import service
    from app.incidents.models import IncidentCreate

    resolved = utcnow() - timedelta(days=resolved_days_ago)
    return await service.create_incident(bk, user=user, data=IncidentCreate.model_validate({
        "title": title, "severity": "HIGH", "status": "RESOLVED", "category": fields.pop("category", "Database"),
        "root_cause": cause, "resolution": resolution, "detected_at": (resolved - timedelta(hours=2)).isoformat(),
        "resolved_at": resolved.isoformat(), **fields}))


async def test_the_window_picks_recurring_causes_that_occurred_in_it_and_no_fix_means_no_pattern(own, tokens):  # noqa: F811
    bk, _ = own
    user = tokens["admin_user"]
    pool = ["Connection pool exhausted on the orders database under peak load",
            "Orders database connection pool exhausted at peak traffic",
            "The orders database connection pool was exhausted by peak traffic",
            "Connection pool on the orders database exhausted during the evening peak"]
    fix = "Raised the orders pool size to 200 and restarted the api pods"
    old = [await _incident(bk, user, f"Checkout errors {k}", c, resolved_days_ago=200 + k, resolution=fix,
                           affected_services=["orders-db"]) for k, c in enumerate(pool[:3])]
    certs = ["TLS certificate expired on the edge load balancer", "Edge TLS certificate expired: renewal job failed",
             "Expired TLS certificate on the edge load balancer broke HTTPS"]
    for k, c in enumerate(certs):
        await _incident(bk, user, f"HTTPS down {k}", c, resolved_days_ago=2 + k, resolution=PLACEHOLDER,
                        category="Security", affected_services=["edge"])

    quiet = await runs.run(bk, days=30, min_frequency=3, dry_run=True)  # the pool cause did not occur this month
    assert [r for r in quiet.rows if r.action != runs.NO_FIX] == []
    assert [r.action for r in quiet.rows if r.pattern_type == "ROOT_CAUSE"] == [runs.NO_FIX]  # the certificates:
    # three recent incidents, none records a fix: reported, never created

    recent = await _incident(bk, user, "Checkout errors again", pool[3], resolved_days_ago=1,
                             resolution=PLACEHOLDER, affected_services=["orders-db"])
    report = await runs.run(bk, days=30, min_frequency=3)
    assert report.incidents == 4 and report.history == 7
    created = await bk.mongo.learning_patterns.find({"pattern_type": "ROOT_CAUSE"}).to_list(None)
    assert len(created) == 1, [p["name"] for p in created]
    p = created[0]
    assert set(p["source_incidents"]) == {i["_id"] for i in old} | {recent["_id"]} and p["frequency"] == 4
    assert p["actions"] == [fix] and len(p["name"].split()) >= 3 and "connection pool" in p["name"].lower()
    assert any(r.action == runs.NO_FIX for r in report.rows)
    record = await bk.mongo.pattern_mining_runs.find_one({"_id": report.run_id})
    assert record["counts"]["not_created_no_fix"] >= 1 and record["history"] == 7

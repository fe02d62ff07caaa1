"""Learning patterns through REST: the documented fields, admin management, validation with a trace of
later changes, application, merging, classification of patterns and of their sources, lists, statistics."""

from __future__ import annotations

from tests.conftest import unique
from tests.postmortems.test_rest import create_pm, new_incident

BASE = "/api/knowledge/learning-patterns/"
KEYS = {"id", "name", "pattern_type", "description", "frequency", "success_rate", "confidence_score", "triggers",
        "actions", "outcomes", "source_incidents", "source_postmortems", "is_validated", "validated_by",
        "validated_by_username", "validation_notes", "times_applied", "last_applied", "validated_at", "created_at",
        "updated_at", "data_classification", "history"}


async def pattern(client, admin, **over) -> dict:
    body = {"name": unique("Connection pool exhaustion under peak load"), "pattern_type": "ROOT_CAUSE",
            "description": "Pools sized for average traffic run dry at peak.",
            "triggers": ["connection timeout errors", "pool wait time alerts"],
            "actions": ["raise the pool size", "add a pool usage alert"], "outcomes": ["resolved within 90 min"],
            "success_rate": 0.8, "confidence_score": 0.7, **over}
    r = await client.post(BASE, headers=admin, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_admins_manage_everyone_reads(client, admin, editor, viewer):
    inc = await new_incident(client, admin)
    p = await pattern(client, admin, source_incidents=[inc["id"]])
    assert set(p) == KEYS and p["frequency"] == 1 and p["is_validated"] is False and p["times_applied"] == 0
    assert p["data_classification"] == "INTERNAL"
    for who in (editor, viewer):
        assert (await client.post(BASE, headers=who, json={"name": "x", "pattern_type": "ROOT_CAUSE"})).status_code == 403
        assert (await client.patch(f"{BASE}{p['id']}/", headers=who, json={"name": "y"})).status_code == 403
        assert (await client.delete(f"{BASE}{p['id']}/", headers=who)).status_code == 403
        assert (await client.get(f"{BASE}{p['id']}/", headers=who)).json()["name"] == p["name"]
    for bad in ({"name": "", "pattern_type": "ROOT_CAUSE"}, {"name": "x", "pattern_type": "LUCK"},
                {"name": "x", "pattern_type": "ROOT_CAUSE", "success_rate": 2},
                {"name": "x", "pattern_type": "ROOT_CAUSE", "source_incidents": ["nope"]},
                {"name": "x", "pattern_type": "ROOT_CAUSE", "surprise": 1}):
        r = await client.post(BASE, headers=admin, json=bad)
        assert r.status_code == 400 and set(r.json()) == {"error", "details", "code"}, bad
    r = await client.patch(f"{BASE}{p['id']}/", headers=admin, json={"description": "Better words"})
    assert r.status_code == 200 and r.json()["description"] == "Better words" and r.json()["history"] == []
    assert (await client.delete(f"{BASE}{p['id']}/", headers=admin)).status_code == 204
    assert (await client.get(f"{BASE}{p['id']}/", headers=viewer)).json()["code"] == "PATTERN_NOT_FOUND"


async def test_validate_then_changes_leave_a_trace_and_apply_counts(client, admin, editor, viewer):
    p = await pattern(client, admin)
    r = await client.post(f"{BASE}{p['id']}/validate/", headers=editor,
                          json={"validation_notes": "This pattern has been validated by the expert team"})
    assert r.status_code == 403
    r = await client.post(f"{BASE}{p['id']}/validate/", headers=admin,
                          json={"validation_notes": "This pattern has been validated by the expert team"})
    v = r.json()
    assert r.status_code == 200 and v["is_validated"] and v["validation_notes"].startswith("This pattern")
    assert v["validated_by_username"] and v["validated_at"]
    r = await client.patch(f"{BASE}{p['id']}/", headers=admin, json={"actions": ["raise the pool size"]})
    hist = r.json()["history"]
    assert len(hist) == 1 and hist[0]["action"] == "update"
    assert hist[0]["before"] == {"actions": ["raise the pool size", "add a pool usage alert"]}

    inc = await new_incident(client, editor)
    for body in ({}, {"incident_id": inc["id"]}):
        r = await client.post(f"{BASE}{p['id']}/apply/", headers=editor, json=body)
        assert r.status_code == 200, r.text
    assert r.json()["times_applied"] == 2 and r.json()["last_applied"]
    assert (await client.post(f"{BASE}{p['id']}/apply/", headers=viewer, json={})).status_code == 403
    r = await client.post(f"{BASE}{p['id']}/apply/", headers=editor, json={"incident_id": "nope"})
    assert r.status_code == 400 and r.json()["code"] == "INCIDENT_NOT_FOUND"


async def test_merge_unites_and_deletes_the_other(client, admin):
    a_inc, b_inc = await new_incident(client, admin), await new_incident(client, admin)
    a = await pattern(client, admin, source_incidents=[a_inc["id"]], success_rate=1.0, confidence_score=0.6)
    b = await pattern(client, admin, source_incidents=[b_inc["id"]], success_rate=0.5, confidence_score=0.8,
                      triggers=["connection timeout errors", "queue backlog"], actions=["shed load"])
    r = await client.post(f"{BASE}{a['id']}/merge/", headers=admin, json={"other": b["id"]})
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["source_incidents"] == [a_inc["id"], b_inc["id"]] and m["frequency"] == 2
    assert m["triggers"] == ["connection timeout errors", "pool wait time alerts", "queue backlog"]
    assert m["actions"] == ["raise the pool size", "add a pool usage alert", "shed load"]
    assert m["success_rate"] == 0.75 and m["confidence_score"] == 0.7
    assert (await client.get(f"{BASE}{b['id']}/", headers=admin)).status_code == 404
    assert (await client.post(f"{BASE}{a['id']}/merge/", headers=admin, json={"other": a["id"]})).status_code == 400
    assert (await client.post(f"{BASE}{a['id']}/merge/", headers=admin, json={"other": b["id"]})).status_code == 404


async def test_classification_of_patterns_and_sources(client, admin, editor, viewer):
    internal = await new_incident(client, admin)
    secret = await new_incident(client, admin, data_classification="CONFIDENTIAL")
    secret_pm = await create_pm(client, admin, secret, data_classification="CONFIDENTIAL")
    mixed = await pattern(client, admin, source_incidents=[internal["id"], secret["id"]],
                          source_postmortems=[secret_pm["id"]], data_classification="INTERNAL")
    seen = (await client.get(f"{BASE}{mixed['id']}/", headers=viewer)).json()
    assert seen["source_incidents"] == [internal["id"]] and seen["source_postmortems"] == []
    assert (await client.get(f"{BASE}{mixed['id']}/", headers=editor)).json()["source_postmortems"] == [secret_pm["id"]]
    default = await pattern(client, admin, source_incidents=[secret["id"]])  # the most secret of its sources
    assert default["data_classification"] == "CONFIDENTIAL"
    r = await client.get(f"{BASE}{default['id']}/", headers=viewer)
    assert r.status_code == 404 and r.json()["code"] == "PATTERN_NOT_FOUND"
    listed = (await client.get(BASE, headers=viewer, params={"search": default["name"]})).json()
    assert listed["count"] == 0
    r = await client.post(f"{BASE}{default['id']}/apply/", headers=viewer, json={})
    assert r.status_code == 403
    # statistics count only what the reader may see: the hidden pattern, and the hidden incident's occurrence
    stats = (await client.get(BASE + "statistics/", headers=viewer)).json()
    assert stats["total_patterns"] == (await client.get(BASE, headers=viewer)).json()["count"]
    assert default["id"] not in {t["pattern"] for t in stats["weekly_occurrences"]}
    mine = next(t for t in stats["weekly_occurrences"] if t["pattern"] == mixed["id"])
    assert sum(w["occurrences"] for w in mine["weeks"]) == 1  # the INTERNAL source only


async def test_list_filters_search_ordering_and_statistics(client, admin, viewer):
    inc = await new_incident(client, admin)
    tag = unique("detect")
    p = await pattern(client, admin, name=f"Late detection {tag}", pattern_type="DETECTION",
                      triggers=[f"customer report {tag}"], source_incidents=[inc["id"]])
    await client.post(f"{BASE}{p['id']}/validate/", headers=admin, json={"validation_notes": "ok"})
    await client.post(f"{BASE}{p['id']}/apply/", headers=admin, json={})
    r = await client.get(BASE, headers=viewer, params={"pattern_type": "DETECTION", "is_validated": "true",
                                                       "search": tag, "ordering": "-frequency"})
    assert r.status_code == 200 and [x["id"] for x in r.json()["results"]] == [p["id"]]
    for ordering in ("created_at", "-confidence_score", "success_rate", "frequency"):
        assert (await client.get(BASE, headers=viewer, params={"ordering": ordering})).status_code == 200
    for bad in ({"pattern_type": "LUCK"}, {"is_validated": "perhaps"}, {"ordering": "name"}):
        assert (await client.get(BASE, headers=viewer, params=bad)).status_code == 400, bad
    stats = (await client.get(BASE + "statistics/", headers=viewer)).json()
    assert set(stats) == {"total_patterns", "by_type", "validated_count", "validated_share", "most_applied",
                          "average_success_rate_by_type", "weekly_occurrences", "window_weeks"}
    assert stats["by_type"]["DETECTION"] >= 1 and 0 < stats["validated_share"] <= 1
    assert any(m["id"] == p["id"] for m in stats["most_applied"])
    mine = next(t for t in stats["weekly_occurrences"] if t["pattern"] == p["id"])
    assert sum(w["occurrences"] for w in mine["weeks"]) == 1
    assert (await client.get(BASE + "statistics/", headers=viewer, params={"weeks": 0})).status_code == 400

"""generate_automated/ and generatePostmortemDraft on the real stack: the documented response, edited
sections kept unless forced, hidden postmortems, roles."""

from __future__ import annotations

from tests.conftest import unique
from tests.postmortems.test_rest import BASE, create_pm, new_incident

EVENTS = [
    {"timestamp": "2024-01-15T10:00:00Z", "type": "Detection", "source": "monitoring.system",
     "message": "Database connection timeout detected", "details": {"affected_users": 500}},
    {"timestamp": "2024-01-15T10:00:00Z", "type": "Detection", "source": "monitoring.system",
     "message": "Database connection timeout detected"},
    {"timestamp": "2024-01-15T11:00:00Z", "type": "ApprovalRequired", "source": "ops-bot", "message": "Approve resize"},
    {"timestamp": "2024-01-15T11:45:00Z", "type": "Mitigation", "source": "john.doe", "message": "Pool resized"},
]


async def incident(client, headers, **over):
    return await new_incident(client, headers, severity="HIGH", status="RESOLVED", affected_services=["database"],
                              affected_teams=["database.team"], root_cause="Connection pool exhausted",
                              resolution="Raised pool size", detected_at="2024-01-15T10:30:00Z",
                              resolved_at="2024-01-15T12:00:00Z", timeline=EVENTS, **over)


async def test_documented_response_and_sections(client, editor):
    inc = await incident(client, editor)
    pm = await create_pm(client, editor, inc, executive_summary="")
    r = await client.post(f"{BASE}{pm['id']}/generate_automated/", headers=editor)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"message", "confidence_score"} and body["message"] == "Postmortem generated successfully"
    assert 0 < body["confidence_score"] <= 1
    got = (await client.get(f"{BASE}{pm['id']}/", headers=editor)).json()
    assert got["is_automated"] is True and got["generation_confidence"] == body["confidence_score"]
    assert got["auto_generated_sections"] == ["executive_summary", "timeline", "root_cause_analysis",
                                              "impact_assessment", "lessons_learned", "action_items"]
    assert got["completion_percentage"] == 100.0
    assert got["timeline"][0] == {"timestamp": "2024-01-15T10:00:00Z", "event": "Detection",
                                  "description": "Database connection timeout detected", "actor": "monitoring.system"}
    assert len(got["timeline"]) == 3
    assert "Connection pool exhausted" in got["root_cause_analysis"]
    assert "affected_users: 500" in got["impact_assessment"]
    assert "Slow detection" in got["lessons_learned"] and "Long approval wait: 45 minutes" in got["lessons_learned"]
    assert all(i["id"] and i["status"] == "OPEN" for i in got["action_items"])


async def test_edited_sections_kept_unless_force(client, editor):
    inc = await incident(client, editor)
    pm = await create_pm(client, editor, inc, executive_summary="Written by a person")
    assert (await client.post(f"{BASE}{pm['id']}/generate_automated/", headers=editor, json={})).status_code == 200
    got = (await client.get(f"{BASE}{pm['id']}/", headers=editor)).json()
    assert got["executive_summary"] == "Written by a person"
    assert "executive_summary" not in got["auto_generated_sections"]
    # a person edits an auto-generated section: it is theirs now
    r = await client.patch(f"{BASE}{pm['id']}/", headers=editor, json={"root_cause_analysis": "Our own analysis"})
    assert r.status_code == 200 and "root_cause_analysis" not in r.json()["auto_generated_sections"]
    assert (await client.post(f"{BASE}{pm['id']}/generate_automated/", headers=editor)).status_code == 200
    got = (await client.get(f"{BASE}{pm['id']}/", headers=editor)).json()
    assert got["root_cause_analysis"] == "Our own analysis" and got["executive_summary"] == "Written by a person"
    assert "timeline" in got["auto_generated_sections"]

    r = await client.post(f"{BASE}{pm['id']}/generate_automated/", headers=editor, json={"force": True})
    assert r.status_code == 200
    got = (await client.get(f"{BASE}{pm['id']}/", headers=editor)).json()
    assert got["executive_summary"] != "Written by a person" and "Connection pool" in got["root_cause_analysis"]
    assert "executive_summary" in got["auto_generated_sections"]
    bad = await client.post(f"{BASE}{pm['id']}/generate_automated/", headers=editor, json={"force": "yes", "x": 1})
    assert bad.status_code == 400


async def test_hidden_404_viewer_403(client, editor, admin, viewer):
    secret = await incident(client, admin, data_classification="RESTRICTED")
    pm = await create_pm(client, admin, secret)
    r = await client.post(f"{BASE}{pm['id']}/generate_automated/", headers=editor)
    assert r.status_code == 404 and r.json()["code"] == "POSTMORTEM_NOT_FOUND"
    inc = await incident(client, editor)
    mine = await create_pm(client, editor, inc)
    r = await client.post(f"{BASE}{mine['id']}/generate_automated/", headers=viewer)
    assert r.status_code == 403


async def test_graphql_mutation(client, editor, viewer):
    inc = await incident(client, editor)
    pm = await create_pm(client, editor, inc, executive_summary="")
    q = """mutation($id: ID!, $force: Boolean!) { generatePostmortemDraft(id: $id, force: $force) {
      __typename ... on Postmortem { isAutomated generationConfidence autoGeneratedSections timeline }
      ... on UserError { code message } } }"""
    r = await client.post("/graphql", headers=editor, json={"query": q, "variables": {"id": pm["id"], "force": False}})
    out = r.json()["data"]["generatePostmortemDraft"]
    assert out["__typename"] == "Postmortem" and out["isAutomated"] is True and len(out["timeline"]) == 3
    assert "executive_summary" in out["autoGeneratedSections"]
    r = await client.post("/graphql", headers=viewer, json={"query": q, "variables": {"id": pm["id"], "force": False}})
    assert r.json()["data"]["generatePostmortemDraft"]["__typename"] == "PermissionDeniedError"
    r = await client.post("/graphql", headers=editor, json={"query": q, "variables": {"id": "nope", "force": True}})
    assert r.json()["data"]["generatePostmortemDraft"]["code"] == "POSTMORTEM_NOT_FOUND"


async def test_drafts_cite_runbooks_and_earlier_postmortems_never_above_their_classification(client, admin, bk):
    """An INTERNAL postmortem drafted by an admin (who sees everything) cites the INTERNAL runbook and the
    INTERNAL earlier postmortem that match, never their CONFIDENTIAL twins; its services, teams and related
    incidents are filled from the data."""
    from app.indexing import outbox

    service_name = unique("ledger-api")
    words = "Ledger writes failing, connection pool exhausted on ledger primary"

    async def earlier(classification: str, rca: str, detected_at: str = "2024-01-01T10:00:00Z") -> dict:
        inc = await new_incident(client, admin, title=words, severity="HIGH", status="RESOLVED",
                                 affected_services=[service_name], root_cause="Connection pool exhausted",
                                 data_classification=classification, detected_at=detected_at)
        pm = await create_pm(client, admin, inc, title=f"Postmortem {classification} {unique('pm')}",
                             root_cause_analysis=rca, data_classification=classification)
        return {"incident": inc, "pm": pm}

    internal = await earlier("INTERNAL", "The pool was sized for last year's traffic. It ran out at peak.")
    secret = await earlier("CONFIDENTIAL", "Vendor contract 7731 capped connections. Nobody knew.")
    # as similar, but detected after the incident drafted: never cited as a past incident
    later = await earlier("INTERNAL", "A replica lagged 9911 seconds. It was later.", detected_at="2024-02-01T10:00:00Z")
    runbooks = {}
    for classification in ("INTERNAL", "CONFIDENTIAL"):
        r = await client.post("/api/knowledge/knowledge-articles/", headers=admin, json={
            "title": f"Runbook {classification} {unique('rb')}", "content": "Raise the pool size.",
            "article_type": "RUNBOOK", "category": "Database", "status": "PUBLISHED",
            "related_services": [service_name], "data_classification": classification})
        assert r.status_code == 201, r.text
        runbooks[classification] = r.json()
    inc = await new_incident(client, admin, title=words, severity="HIGH", status="RESOLVED",
                             affected_services=[service_name], affected_teams=["ledger.team"],
                             root_cause="Connection pool exhausted", resolution="Raised pool size",
                             detected_at="2024-01-15T10:30:00Z", resolved_at="2024-01-15T12:00:00Z", timeline=EVENTS)
    # a catalogue listing the incident is linked to it, but is no guide to follow
    r = await client.post("/api/knowledge/knowledge-articles/", headers=admin, json={
        "title": f"Database incident catalogue {unique('cat')}", "content": "Every database incident in a table.",
        "article_type": "REFERENCE", "category": "Database", "status": "PUBLISHED", "related_incidents": [inc["id"]]})
    assert r.status_code == 201, r.text
    catalogue = r.json()
    await outbox.flush(bk)
    pm = await create_pm(client, admin, inc, executive_summary="", affected_services=[], related_incidents=[])
    r = await client.post(f"{BASE}{pm['id']}/generate_automated/", headers=admin)
    assert r.status_code == 200, r.text
    got = (await client.get(f"{BASE}{pm['id']}/", headers=admin)).json()
    text = " ".join(str(got[k]) for k in ("root_cause_analysis", "lessons_learned", "action_items"))
    assert internal["pm"]["id"] in text and "sized for last year" in text
    assert runbooks["INTERNAL"]["title"] in text and catalogue["title"] not in text
    # the markers are checked with their words: a bare number can turn up inside an id's hex digits ("9911" did,
    # in an action item's id; the one earlier failure of this line was most likely the same)
    assert secret["pm"]["id"] not in text and "contract 7731" not in text, (
        {k: got.get(k) for k in ("data_classification", "auto_generated_sections", "generation_confidence",
                                 "updated_at", "lessons_learned")}, await bk.mongo.audit_log.find(
            {"subject_id": pm["id"]}, {"_id": 0, "action": 1, "user_id": 1, "changes": 1}).to_list(None))
    assert runbooks["CONFIDENTIAL"]["title"] not in text
    assert secret["incident"]["id"] not in got["related_incidents"] and secret["incident"]["name"] not in text
    assert internal["incident"]["id"] in got["related_incidents"]
    assert later["pm"]["id"] not in text and "lagged 9911" not in text and later["incident"]["name"] not in text
    assert later["incident"]["id"] not in got["related_incidents"]
    assert got["affected_services"] == [service_name] and got["affected_teams"] == ["ledger.team"]

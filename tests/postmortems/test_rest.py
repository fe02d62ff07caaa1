"""Postmortems REST: the documented create body and shapes, the review workflow, who may approve,
classification, derived fields, the list helper and statistics."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import unique

BASE = "/api/knowledge/postmortems/"
INCIDENTS = "/api/v1/incidents/"
LIST_KEYS = {"id", "title", "incident", "incident_title", "status", "severity", "owner_username",
             "completion_percentage", "is_overdue", "created_at", "due_date"}
DETAIL_KEYS = {"id", "title", "incident", "incident_title", "executive_summary", "timeline", "root_cause_analysis",
               "impact_assessment", "lessons_learned", "action_items", "is_automated", "generation_confidence",
               "auto_generated_sections", "status", "severity", "owner", "owner_username", "reviewers",
               "reviewer_usernames", "approver", "approver_username", "created_at", "updated_at", "published_at",
               "due_date", "related_incidents", "affected_services", "affected_teams", "completion_percentage",
               "is_overdue"}


async def new_incident(client, headers, **fields) -> dict:
    r = await client.post(INCIDENTS, headers=headers, json={"title": unique("Database Connection Timeout"), **fields})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="session")
async def people(bk, tokens):
    """A second editor who approves, with a token."""
    from app.users.models import Classification, Role, UserCreate
    from app.users.service import create_user, issue_token

    user = await create_user(bk, data=UserCreate(username=f"approver-{uuid.uuid4().hex[:6]}", role=Role.EDITOR,
                                                 clearance=Classification.CONFIDENTIAL))
    return {"approver": user, "approver_headers": {"Authorization": f"Token {await issue_token(bk, user=user)}"}}


async def create_pm(client, headers, incident: dict, **fields) -> dict:
    body = {"title": "Postmortem: New Incident", "incident": incident["id"], "executive_summary": "Executive summary...",
            "severity": "HIGH", **fields}
    r = await client.post(BASE, headers=headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_documented_create_body_and_shapes(client, editor, viewer, tokens):
    inc = await new_incident(client, editor, severity="HIGH")
    owner = tokens["editor_user"]
    r = await client.post(BASE, headers=editor, json={
        "title": "Postmortem: New Incident", "incident": inc["id"], "executive_summary": "Executive summary...",
        "severity": "HIGH", "owner": owner.id, "due_date": "2024-01-29T00:00:00Z"})
    assert r.status_code == 201, r.text
    pm = r.json()
    assert set(pm) >= DETAIL_KEYS
    assert pm["status"] == "DRAFT" and pm["incident"] == inc["id"] and pm["incident_title"] == inc["title"]
    assert pm["owner"] == owner.id and pm["owner_username"] == owner.username
    assert pm["due_date"] == "2024-01-29T00:00:00Z" and pm["is_overdue"] is True
    # "Executive summary..." is a placeholder, not a summary (it counted as 1 of 6 when any text did)
    assert pm["completion_percentage"] == 0.0 and pm["is_automated"] is False
    assert pm["reviewers"] == [] and pm["reviewer_usernames"] == [] and pm["approver_username"] is None
    assert pm["data_classification"] == "INTERNAL" and pm["published_at"] is None

    got = await client.get(f"{BASE}{pm['id']}/", headers=viewer)
    assert got.status_code == 200 and got.json() == pm
    listed = (await client.get(BASE, headers=viewer, params={"search": inc["title"].split("-")[-1]})).json()
    assert set(listed) == {"count", "next", "previous", "results"}
    # the search term is the incident's unique suffix, not in the postmortem: nothing
    assert listed["count"] == 0
    listed = (await client.get(BASE, headers=viewer, params={"owner": owner.username, "ordering": "-created_at"})).json()
    row = next(x for x in listed["results"] if x["id"] == pm["id"])
    assert set(row) == LIST_KEYS and row["owner_username"] == owner.username and row["incident_title"] == inc["title"]


async def test_bad_input(client, editor, viewer):
    inc = await new_incident(client, editor)
    for body in ({"incident": inc["id"]}, {"title": "x"}, {"title": "x", "incident": inc["id"], "severity": "HUGE"},
                 {"title": "x", "incident": inc["id"], "bogus": 1},
                 {"title": "x", "incident": inc["id"], "owner": str(uuid.uuid4())}):
        r = await client.post(BASE, headers=editor, json=body)
        assert r.status_code == 400, (body, r.text)
        assert set(r.json()) == {"error", "details", "code"}
    r = await client.post(BASE, headers=editor, json={"title": "x", "incident": str(uuid.uuid4())})
    assert r.status_code == 400 and r.json()["code"] == "INCIDENT_NOT_FOUND"
    r = await client.post(BASE, headers=viewer, json={"title": "x", "incident": inc["id"]})
    assert r.status_code == 403
    assert (await client.get(f"{BASE}{uuid.uuid4()}/", headers=viewer)).status_code == 404
    r = await client.get(BASE, headers=viewer, params={"ordering": "title"})
    assert r.status_code == 400 and r.json()["code"] == "INVALID_ORDERING"


async def test_workflow_every_move_and_refusals(client, editor, admin, people, bk):
    inc = await new_incident(client, editor)
    approver = people["approver"]
    pm = await create_pm(client, editor, inc, approver=approver.id)
    assert pm["approver_username"] == approver.username
    pid = pm["id"]

    async def move(action, headers=editor):
        return await client.post(f"{BASE}{pid}/{action}/", headers=headers)

    r = await move("approve")  # DRAFT cannot be approved
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["code"] == "INVALID_TRANSITION" and body["details"]["status"] == "DRAFT"
    assert body["details"]["allowed"] == ["IN_REVIEW"] and "DRAFT" in body["error"] and "IN_REVIEW" in body["error"]
    # it names the move needed first (before: only the statuses allowed next)
    assert body["details"]["needs"] == ["submit_for_review"] and "submit_for_review/ first" in body["error"]
    assert (await move("publish")).status_code == 409

    assert (await move("submit_for_review")).json()["status"] == "IN_REVIEW"
    r = await move("publish")
    assert r.status_code == 409 and r.json()["details"]["allowed"] == ["APPROVED", "DRAFT"]
    assert (await move("request_changes")).json()["status"] == "DRAFT"
    assert (await move("submit_for_review")).json()["status"] == "IN_REVIEW"
    r = await move("approve")  # the owner never approves
    assert r.status_code == 403 and r.json()["code"] == "SELF_APPROVAL"
    r = await move("approve", people["approver_headers"])
    assert r.status_code == 200 and r.json()["status"] == "APPROVED" and r.json()["published_at"] is None
    assert (await move("archive")).status_code == 409
    r = await move("publish")
    assert r.status_code == 200 and r.json()["status"] == "PUBLISHED" and r.json()["published_at"]
    assert r.json()["is_overdue"] is False
    assert (await move("publish")).status_code == 409
    r = await move("archive")
    assert r.json()["status"] == "ARCHIVED"
    r = await move("submit_for_review")
    assert r.status_code == 409 and r.json()["details"] == {"status": "ARCHIVED", "allowed": [],
                                                            "action": "submit_for_review", "needs": []}

    log = await bk.mongo.audit_log.find({"subject_type": "postmortem", "subject_id": pid}).sort("at", 1).to_list(None)
    assert [e["action"] for e in log] == ["create", "submit_for_review", "request_changes", "submit_for_review",
                                          "approve", "publish", "archive"]
    assert log[4]["username"] == approver.username
    assert log[5]["changes"] == {"status": {"from": "APPROVED", "to": "PUBLISHED"}}


async def test_admin_approves_and_owner_who_is_approver_does_not(client, editor, admin, tokens):
    inc = await new_incident(client, editor)
    r = await client.post(BASE, headers=editor, json={"title": "Self-approved", "incident": inc["id"],
                                                      "approver": tokens["editor_user"].id})
    assert r.status_code == 400 and r.json()["code"] == "SELF_APPROVAL"  # nobody is named approver of their own
    pm = await create_pm(client, editor, inc)
    await client.post(f"{BASE}{pm['id']}/submit_for_review/", headers=editor)
    assert (await client.post(f"{BASE}{pm['id']}/approve/", headers=editor)).status_code == 403
    r = await client.post(f"{BASE}{pm['id']}/approve/", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "APPROVED"


async def test_update_put_patch_and_admin_delete(client, editor, admin, people):
    inc = await new_incident(client, editor)
    pm = await create_pm(client, editor, inc)
    r = await client.patch(f"{BASE}{pm['id']}/", headers=editor, json={
        "root_cause_analysis": "Pool exhausted", "reviewers": [people["approver"].id], "severity": "CRITICAL"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["root_cause_analysis"] == "Pool exhausted" and got["severity"] == "CRITICAL"
    assert got["reviewer_usernames"] == [people["approver"].username]
    # the root cause counts; the placeholder summary does not (it did when any text counted: 33.3)
    assert got["completion_percentage"] == round(100 / 6, 1) and got["owner"] == pm["owner"]
    r = await client.patch(f"{BASE}{pm['id']}/", headers=editor, json={"status": "PUBLISHED"})
    assert r.status_code == 400  # status moves only through the workflow
    r = await client.patch(f"{BASE}{pm['id']}/", headers=editor, json={"title": None})
    assert r.status_code == 400
    r = await client.put(f"{BASE}{pm['id']}/", headers=editor, json={"title": "Replaced"})
    assert r.status_code == 200 and r.json()["title"] == "Replaced" and r.json()["root_cause_analysis"] == ""
    assert r.json()["owner"] == pm["owner"] and r.json()["severity"] == "CRITICAL"
    assert (await client.delete(f"{BASE}{pm['id']}/", headers=editor)).status_code == 403
    assert (await client.delete(f"{BASE}{pm['id']}/", headers=admin)).status_code == 204
    assert (await client.get(f"{BASE}{pm['id']}/", headers=admin)).status_code == 404


async def test_derived_fields_and_default_due_date(client, editor, bk):
    resolved_at = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(microsecond=0)
    inc = await new_incident(client, editor, severity="CRITICAL", status="RESOLVED",
                             resolved_at=resolved_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    pm = await create_pm(client, editor, inc, severity=None, timeline=[{"event": "Incident reported"}],
                         impact_assessment="  ", lessons_learned="Alert earlier", action_items=[])
    assert pm["severity"] == "CRITICAL"  # the incident's
    assert pm["due_date"] == (resolved_at + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # lessons only: 1 of 6 (blank text and an empty list do not count; nor do a placeholder summary and a
    # timeline with a report but no resolution, which counted as 3 of 6 when any content did)
    assert pm["completion_percentage"] == round(100 / 6, 1) and pm["is_overdue"] is False
    # resolved long ago: due `postmortem_due_min_days` (2) after it was created, not overdue the moment it exists
    old = await new_incident(client, editor, severity="CRITICAL", status="RESOLVED", resolved_at="2026-03-01T12:00:00Z")
    before = datetime.now(timezone.utc)
    late = await create_pm(client, editor, old)
    due = datetime.fromisoformat(late["due_date"].replace("Z", "+00:00"))
    assert timedelta(days=2) - timedelta(minutes=1) < due - before < timedelta(days=2, minutes=1)
    assert late["is_overdue"] is False
    open_inc = await new_incident(client, editor, severity="LOW")
    before = datetime.now(timezone.utc)
    low = await create_pm(client, editor, open_inc, severity="LOW")
    due = datetime.fromisoformat(low["due_date"].replace("Z", "+00:00"))
    assert timedelta(days=20) - timedelta(minutes=1) < due - before < timedelta(days=20, minutes=1)
    assert low["is_overdue"] is False
    # overdue is computed when read, never stored
    await bk.mongo.postmortems.update_one({"_id": low["id"]}, {"$set": {"due_date": before - timedelta(days=1)}})
    assert (await client.get(f"{BASE}{low['id']}/", headers=editor)).json()["is_overdue"] is True
    overdue = (await client.get(f"{BASE}overdue/", headers=editor, params={"page_size": 100})).json()
    ids = [p["id"] for p in overdue["results"]]
    assert low["id"] in ids and all(p["is_overdue"] for p in overdue["results"])


async def test_filters_search_and_severity_ordering(client, editor, viewer):
    inc = await new_incident(client, editor)
    tag = uuid.uuid4().hex[:10]
    for sev in ("MEDIUM", "CRITICAL", "LOW", "HIGH"):
        await create_pm(client, editor, inc, title=f"{tag} {sev}", severity=sev)
    await create_pm(client, editor, inc, title="other", root_cause_analysis=f"found {tag} in RCA", severity="LOW")
    r = (await client.get(BASE, headers=viewer, params={"search": tag, "ordering": "-severity"})).json()
    assert r["count"] == 5
    assert [x["severity"] for x in r["results"]] == ["CRITICAL", "HIGH", "MEDIUM", "LOW", "LOW"]
    r = (await client.get(BASE, headers=viewer, params={"search": tag, "severity": "LOW,HIGH"})).json()
    assert r["count"] == 3
    r = (await client.get(BASE, headers=viewer, params={"search": tag, "status": "DRAFT", "is_automated": "false",
                                                        "page_size": 2})).json()
    assert r["count"] == 5 and len(r["results"]) == 2 and "page=2" in r["next"]
    r = (await client.get(BASE, headers=viewer, params={"search": tag, "is_automated": "true"})).json()
    assert r["count"] == 0
    r = (await client.get(BASE, headers=viewer, params={"search": tag, "owner": "nobody-" + tag})).json()
    assert r["count"] == 0
    assert (await client.get(BASE, headers=viewer, params={"status": "DONE"})).status_code == 400


async def test_classification(client, admin, editor, viewer):
    secret_inc = await new_incident(client, admin, data_classification="RESTRICTED")
    # an incident the editor cannot see cannot get a postmortem from them, answered like a missing one
    r = await client.post(BASE, headers=editor, json={"title": "x", "incident": secret_inc["id"]})
    missing = await client.post(BASE, headers=editor, json={"title": "x", "incident": str(uuid.uuid4())})
    assert r.status_code == missing.status_code == 400 and r.json()["code"] == missing.json()["code"]
    tag = uuid.uuid4().hex[:10]
    secret = await create_pm(client, admin, secret_inc, title=f"{tag} secret")
    assert secret["data_classification"] == "RESTRICTED"  # the incident's
    inc = await new_incident(client, editor)
    conf = await create_pm(client, editor, inc, title=f"{tag} conf", data_classification="CONFIDENTIAL")
    r = await client.post(BASE, headers=editor, json={"title": "x", "incident": inc["id"],
                                                      "data_classification": "RESTRICTED"})
    assert r.status_code == 400 and r.json()["details"]["field"] == "data_classification"

    async def ids(headers):
        return {x["id"] for x in (await client.get(BASE, headers=headers, params={"search": tag})).json()["results"]}
    assert await ids(admin) == {secret["id"], conf["id"]}
    assert await ids(editor) == {conf["id"]}
    assert await ids(viewer) == set()
    for pm_id, headers in ((secret["id"], editor), (conf["id"], viewer)):
        r = await client.get(f"{BASE}{pm_id}/", headers=headers)
        assert r.status_code == 404 and r.json()["code"] == "POSTMORTEM_NOT_FOUND"
        assert (await client.patch(f"{BASE}{pm_id}/", headers=editor if pm_id == secret["id"] else viewer,
                                   json={"title": "y"})).status_code in (403, 404)
    assert (await client.post(f"{BASE}{secret['id']}/submit_for_review/", headers=editor)).status_code == 404
    stats = {h: (await client.get(f"{BASE}statistics/", headers=hd)).json()["total_postmortems"]
             for h, hd in (("admin", admin), ("editor", editor))}
    assert stats["admin"] >= stats["editor"] + 1


async def test_statistics_keys(client, editor, viewer):
    inc = await new_incident(client, editor)
    await create_pm(client, editor, inc)
    r = await client.get(f"{BASE}statistics/", headers=viewer)
    assert r.status_code == 200
    stats = r.json()
    assert set(stats) == {"total_postmortems", "by_status", "by_severity", "automated_percentage", "overdue_count",
                          "avg_completion_time", "overdue_action_items"}
    assert set(stats["by_status"]) == {"DRAFT", "IN_REVIEW", "APPROVED", "PUBLISHED", "ARCHIVED"}
    assert set(stats["by_severity"]) == {"LOW", "MEDIUM", "HIGH", "CRITICAL"}
    assert stats["total_postmortems"] == sum(stats["by_status"].values()) == sum(stats["by_severity"].values())
    assert stats["total_postmortems"] >= 1 and isinstance(stats["automated_percentage"], float)

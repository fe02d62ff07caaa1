"""Separation of duties on approval, whatever the order of calls: the owner and the author never approve,
only the owner or an admin changes who owns or approves, and nobody is named approver of their own work."""

from __future__ import annotations

import uuid

import pytest

from tests.postmortems.test_rest import BASE, create_pm, new_incident


@pytest.fixture(scope="session")
async def two_editors(bk):
    from app.users.models import Classification, Role, UserCreate
    from app.users.service import create_user, issue_token

    out = []
    for _ in range(2):
        user = await create_user(bk, data=UserCreate(username=f"duty-{uuid.uuid4().hex[:6]}", role=Role.EDITOR,
                                                     clearance=Classification.RESTRICTED))
        out.append((user, {"Authorization": f"Token {await issue_token(bk, user=user)}"}))
    return out


async def test_the_author_never_approves_even_after_handing_ownership_away(client, admin, two_editors):
    (author, author_h), (other, other_h) = two_editors
    pm = await create_pm(client, author_h, await new_incident(client, admin))
    # handing the postmortem away while naming oneself approver is refused, and changes nothing
    r = await client.patch(f"{BASE}{pm['id']}/", headers=author_h, json={"owner": other.id, "approver": author.id})
    assert r.status_code == 400 and r.json()["code"] == "SELF_APPROVAL", r.text
    r = await client.patch(f"{BASE}{pm['id']}/", headers=author_h, json={"approver": author.id})
    assert r.status_code == 400 and r.json()["code"] == "SELF_APPROVAL", r.text
    # the handover alone is allowed; the author is still the author
    r = await client.patch(f"{BASE}{pm['id']}/", headers=author_h, json={"owner": other.id})
    assert r.status_code == 200 and r.json()["owner"] == other.id, r.text
    # the new owner cannot name the author approver either
    r = await client.patch(f"{BASE}{pm['id']}/", headers=other_h, json={"approver": author.id})
    assert r.status_code == 400 and r.json()["code"] == "SELF_APPROVAL", r.text
    assert (await client.post(f"{BASE}{pm['id']}/submit_for_review/", headers=other_h)).status_code == 200
    for who in (author_h, other_h):  # neither the author nor the owner approves
        r = await client.post(f"{BASE}{pm['id']}/approve/", headers=who)
        assert r.status_code == 403, r.text
    assert (await client.get(f"{BASE}{pm['id']}/", headers=admin)).json()["status"] == "IN_REVIEW"


async def test_only_the_owner_or_an_admin_changes_the_approver(client, admin, two_editors):
    (author, author_h), (other, other_h) = two_editors
    pm = await create_pm(client, author_h, await new_incident(client, admin))
    for body in ({"approver": other.id}, {"owner": other.id}):
        r = await client.patch(f"{BASE}{pm['id']}/", headers=other_h, json=body)
        assert r.status_code == 403 and r.json()["code"] == "NOT_OWNER", r.text
    r = await client.put(f"{BASE}{pm['id']}/", headers=other_h, json={
        "title": pm["title"], "approver": other.id})
    assert r.status_code == 403, r.text
    current = (await client.get(f"{BASE}{pm['id']}/", headers=admin)).json()
    assert current["approver"] is None and current["owner"] == author.id
    # the owner names someone else; that person approves
    r = await client.patch(f"{BASE}{pm['id']}/", headers=author_h, json={"approver": other.id})
    assert r.status_code == 200, r.text
    assert (await client.post(f"{BASE}{pm['id']}/submit_for_review/", headers=author_h)).status_code == 200
    r = await client.post(f"{BASE}{pm['id']}/approve/", headers=other_h)
    assert r.status_code == 200 and r.json()["status"] == "APPROVED", r.text


async def test_an_admin_approving_their_own_postmortem_is_an_audited_override(client, admin, bk, tokens, two_editors):
    """Editors never approve what they answer for; an admin may (the contract's "an admin's approval fills
    approver"), recorded as `self_approval` in the audit log — and refused with strict separation of duties."""
    pm = await create_pm(client, admin, await new_incident(client, admin))
    assert (await client.post(f"{BASE}{pm['id']}/submit_for_review/", headers=admin)).status_code == 200
    bk.settings.strict_separation_of_duties = True
    try:
        r = await client.post(f"{BASE}{pm['id']}/approve/", headers=admin)
        assert r.status_code == 403 and r.json()["code"] == "SELF_APPROVAL", r.text
    finally:
        bk.settings.strict_separation_of_duties = False
    r = await client.post(f"{BASE}{pm['id']}/approve/", headers=admin)
    assert r.status_code == 200 and r.json()["approver"] == tokens["admin_user"].id and r.json()["approver_username"]
    audit = await bk.mongo.audit_log.find_one({"subject_id": pm["id"], "action": "approve"})
    assert audit["changes"]["self_approval"] is True, audit
    # naming themselves approver stays refused: the override is the approval itself, recorded
    r = await client.post(BASE, headers=admin, json={"title": "x", "incident": pm["incident"],
                                                     "approver": tokens["admin_user"].id})
    assert r.status_code == 400 and r.json()["code"] == "SELF_APPROVAL", r.text


async def test_an_archived_postmortem_is_read_only(client, admin, editor, two_editors):
    (author, author_h), (other, other_h) = two_editors
    pm = await create_pm(client, author_h, await new_incident(client, admin), action_items=[{"title": "Add alert"}])
    for action, who in (("submit_for_review", author_h), ("approve", admin), ("publish", author_h),
                        ("archive", author_h)):
        r = await client.post(f"{BASE}{pm['id']}/{action}/", headers=who)
        assert r.status_code == 200, (action, r.text)
    item = pm["action_items"][0]["id"]
    for r in (await client.patch(f"{BASE}{pm['id']}/", headers=author_h, json={"lessons_learned": "rewritten"}),
              await client.put(f"{BASE}{pm['id']}/", headers=admin, json={"title": "rewritten"}),
              await client.patch(f"{BASE}{pm['id']}/action_items/{item}/", headers=author_h, json={"status": "DONE"})):
        assert r.status_code == 409 and r.json()["code"] == "POSTMORTEM_ARCHIVED", r.text
    got = (await client.get(f"{BASE}{pm['id']}/", headers=admin)).json()
    assert got["status"] == "ARCHIVED" and got["lessons_learned"] != "rewritten" and got["title"] != "rewritten"
    assert got["action_items"][0]["status"] == "OPEN"
    assert (await client.delete(f"{BASE}{pm['id']}/", headers=admin)).status_code == 204


async def test_an_admin_approving_one_nobody_was_named_for_becomes_its_approver(client, admin, two_editors):
    (author, author_h), _ = two_editors
    pm = await create_pm(client, author_h, await new_incident(client, admin))
    assert pm["approver"] is None
    assert (await client.post(f"{BASE}{pm['id']}/submit_for_review/", headers=author_h)).status_code == 200
    r = await client.post(f"{BASE}{pm['id']}/approve/", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "APPROVED", r.text
    assert r.json()["approver"] and r.json()["approver_username"], r.json()  # before: both null


async def test_people_and_incidents_are_named_by_username_and_name_as_well_as_by_id(client, admin, two_editors):
    """Before: a name gave a misleading "not found" (or 0 results in a filter). The rules compare ids, so a
    username cannot slip past separation of duties."""
    (author, author_h), (other, other_h) = two_editors
    inc = await new_incident(client, admin)
    r = await client.post(BASE, headers=author_h, json={"title": "Named", "incident": inc["name"],
                                                        "approver": other.username, "reviewers": [other.username]})
    assert r.status_code == 201, r.text
    pm = r.json()
    assert pm["incident"] == inc["id"] and pm["approver"] == other.id and pm["reviewers"] == [other.id]
    assert pm["owner"] == author.id
    # naming oneself approver by username is refused like by id
    r = await client.patch(f"{BASE}{pm['id']}/", headers=author_h, json={"approver": author.username})
    assert r.status_code == 400 and r.json()["code"] == "SELF_APPROVAL", r.text
    r = await client.patch(f"{BASE}{pm['id']}/", headers=author_h, json={"reviewers": ["nobody-" + author.id]})
    assert r.status_code == 400 and r.json()["code"] == "UNKNOWN_USER", r.text
    for ref in (inc["name"], inc["id"]):
        listed = (await client.get(BASE, headers=admin, params={"incident": ref})).json()
        assert [p["id"] for p in listed["results"]] == [pm["id"]], (ref, listed)
    for ref in (author.username, author.id):
        listed = (await client.get(BASE, headers=admin, params={"owner": ref, "incident": inc["name"]})).json()
        assert listed["count"] == 1, (ref, listed)
    assert (await client.get(BASE, headers=admin, params={"incident": "INC-00000000-999"})).json()["count"] == 0

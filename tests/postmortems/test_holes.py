"""Issue 15 holes in postmortems, each hostile case next to the happy one: separation of duties whatever
the order of calls (REST and GraphQL alike), what a published article copies from the incident, whole-list
action item writes conditional on what the writer read, ARCHIVED read-only, nobody writes above their
clearance (not even through a reclassification that lands mid-request)."""

from __future__ import annotations

import uuid

import pytest

from app.postmortems import service
from app.users.models import Classification, Role
from tests.articles.conftest import BASE as ARTICLES
from tests.articles.test_classification import person
from tests.incidents.test_graphql import gql
from tests.postmortems.test_rest import BASE, create_pm, new_incident

EVENTS = [
    {"timestamp": "2024-01-15T10:00:00Z", "type": "Detection", "source": "monitoring.system",
     "message": "Database connection timeout detected", "details": {"affected_users": 500}},
    {"timestamp": "2024-01-15T11:45:00Z", "type": "Mitigation", "source": "john.doe", "message": "Pool resized"},
]
UPDATE = """mutation($id: ID!, $input: UpdatePostmortemInput!) { updatePostmortem(id: $id, input: $input) {
  __typename ... on Postmortem { id owner { id } approver { id } }
  ... on UserError { code message field details } } }"""
UPDATE_ITEMS = """mutation($id: ID!, $input: UpdatePostmortemInput!) { updatePostmortem(id: $id, input: $input) {
  __typename ... on Postmortem { actionItemsVersion actionItems { id title status } }
  ... on UserError { code message field details } } }"""
ITEM = """mutation($id: ID!, $item: ID!, $input: UpdateActionItemInput!) {
  updatePostmortemActionItem(id: $id, itemId: $item, input: $input) {
  __typename ... on Postmortem { id } ... on UserError { code } } }"""
ITEM_VERSION = """mutation($id: ID!, $item: ID!, $input: UpdateActionItemInput!) {
  updatePostmortemActionItem(id: $id, itemId: $item, input: $input) {
  __typename ... on Postmortem { actionItemsVersion } ... on UserError { code } } }"""


def move(name: str) -> str:
    return f"""mutation($id: ID!) {{ {name}(id: $id) {{ __typename ... on Postmortem {{ status }}
      ... on UserError {{ code message }} }} }}"""


def h(p: dict) -> dict:
    return {"Authorization": p["Authorization"]}


async def resolved_incident(client, headers, **fields) -> dict:
    return await new_incident(client, headers, severity="HIGH", status="RESOLVED", affected_services=["database"],
                              affected_teams=["database.team"], root_cause="Connection pool exhausted",
                              resolution="Raised pool size", detected_at="2024-01-15T10:30:00Z",
                              resolved_at="2024-01-15T12:00:00Z", timeline=EVENTS, **fields)


async def status_of(bk, pm_id: str) -> str:
    return (await bk.mongo.postmortems.find_one({"_id": pm_id}))["status"]


@pytest.fixture
async def editors(bk):
    """Two RESTRICTED editors (the postmortem's owner and another), each {"Authorization", "user"}."""
    return [await person(bk, Role.EDITOR, Classification.RESTRICTED) for _ in range(2)]


def during_write(monkeypatch, action):
    """Run `action()` once inside the next postmortem write, after the service read the postmortem and
    before it writes (the moment a concurrent request lands)."""
    original = service._people
    done = []

    async def hooked(bk, values):
        if not done:
            done.append(True)
            await action()
        return await original(bk, values)

    monkeypatch.setattr(service, "_people", hooked)


# --- 1. separation of duties -----------------------------------------------------------------------

async def test_acceptance_owner_handing_over_and_naming_themselves_approver_never_approves(client, admin, bk,
                                                                                           editors):
    owner, other = editors
    pm = await create_pm(client, h(owner), await resolved_incident(client, admin))
    theirs = await create_pm(client, h(other), await resolved_incident(client, admin))
    owner_id, other_id = pm["owner"], theirs["owner"]
    url = f"{BASE}{pm['id']}/"
    r = await client.patch(url, headers=h(owner), json={"owner": other_id, "approver": owner_id})
    assert r.status_code == 400 and r.json()["code"] == "SELF_APPROVAL", r.text
    assert (await client.post(f"{url}submit_for_review/", headers=h(owner))).status_code == 200
    r = await client.post(f"{url}approve/", headers=h(owner))
    assert r.status_code in (403, 409) and r.json()["code"] == "SELF_APPROVAL", r.text
    assert await status_of(bk, pm["id"]) == "IN_REVIEW"
    r = await client.patch(url, headers=h(other), json={"approver": owner_id})
    assert r.status_code in (403, 404) and r.json()["code"] == "NOT_OWNER", r.text
    stored = await bk.mongo.postmortems.find_one({"_id": pm["id"]})
    assert stored["owner"] == owner_id and stored.get("approver") is None
    # the happy path: the owner names the other editor, who approves
    r = await client.patch(url, headers=h(owner), json={"approver": other_id})
    assert r.status_code == 200 and r.json()["approver"] == other_id, r.text
    r = await client.post(f"{url}approve/", headers=h(other))
    assert r.status_code == 200 and r.json()["status"] == "APPROVED", r.text


async def test_the_author_never_approves_in_any_order_of_calls(client, admin, bk, editors):
    owner, other = editors
    pm = await create_pm(client, h(owner), await resolved_incident(client, admin))
    owner_id, url = pm["owner"], f"{BASE}{pm['id']}/"
    # the handover first, then the former owner names themselves: no longer theirs to change
    assert (await client.patch(url, headers=h(owner), json={"owner": other["user"].id})).status_code == 200
    r = await client.patch(url, headers=h(owner), json={"approver": owner_id})
    assert r.status_code == 403 and r.json()["code"] == "NOT_OWNER", r.text
    # neither the new owner nor an admin can name the author
    for who in (h(other), admin):
        r = await client.patch(url, headers=who, json={"approver": owner_id})
        assert r.status_code == 400 and r.json()["code"] == "SELF_APPROVAL", r.text
    assert (await client.post(f"{url}submit_for_review/", headers=h(other))).status_code == 200
    for who in (h(owner), h(other)):
        r = await client.post(f"{url}approve/", headers=who)
        assert r.status_code == 403 and r.json()["code"] == "SELF_APPROVAL", r.text
    assert await status_of(bk, pm["id"]) == "IN_REVIEW"


async def test_a_former_owner_never_approves_nor_is_named_approver(client, admin, bk, editors):
    """B was handed the postmortem (and wrote in it): handing it on does not make B its reviewer."""
    author, b = editors
    c = await person(bk, Role.EDITOR, Classification.RESTRICTED)
    pm = await create_pm(client, h(author), await resolved_incident(client, admin))
    url, b_id, c_id = f"{BASE}{pm['id']}/", b["user"].id, c["user"].id
    assert (await client.patch(url, headers=h(author), json={"owner": b_id})).status_code == 200
    assert (await client.patch(url, headers=h(b), json={"lessons_learned": "B's lessons"})).status_code == 200
    r = await client.patch(url, headers=h(b), json={"owner": c_id, "approver": b_id})
    assert r.status_code == 400 and r.json()["code"] == "SELF_APPROVAL", r.text
    assert (await client.patch(url, headers=h(b), json={"owner": c_id})).status_code == 200
    for who in (h(c), admin):
        r = await client.patch(url, headers=who, json={"approver": b_id})
        assert r.status_code == 400 and r.json()["code"] == "SELF_APPROVAL", r.text
    out = await gql(client, h(c), UPDATE, id=pm["id"], input={"approver": b_id})
    assert out["data"]["updatePostmortem"]["code"] == "SELF_APPROVAL"
    # even named approver behind the service's back (data from before the rule), B does not approve
    await bk.mongo.postmortems.update_one({"_id": pm["id"]}, {"$set": {"approver": b_id}})
    assert (await client.post(f"{url}submit_for_review/", headers=h(c))).status_code == 200
    r = await client.post(f"{url}approve/", headers=h(b))
    assert r.status_code == 403 and r.json()["code"] == "SELF_APPROVAL", r.text
    assert await status_of(bk, pm["id"]) == "IN_REVIEW"
    # someone who never owned it approves
    r = await client.post(f"{url}approve/", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "APPROVED", r.text


async def test_graphql_applies_the_same_duties(client, admin, editor, bk, editors):
    owner, other = editors
    pm = await create_pm(client, h(owner), await resolved_incident(client, admin))
    owner_id, other_id = pm["owner"], other["user"].id
    out = await gql(client, h(owner), UPDATE, id=pm["id"], input={"owner": other_id, "approver": owner_id})
    assert out["data"]["updatePostmortem"]["__typename"] == "ValidationError"
    assert out["data"]["updatePostmortem"]["code"] == "SELF_APPROVAL"
    out = await gql(client, h(other), UPDATE, id=pm["id"], input={"approver": other_id})
    assert out["data"]["updatePostmortem"]["__typename"] == "PermissionDeniedError"
    assert out["data"]["updatePostmortem"]["code"] == "NOT_OWNER"
    assert (await gql(client, h(owner), move("submitPostmortemForReview"), id=pm["id"]))["data"][
        "submitPostmortemForReview"]["status"] == "IN_REVIEW"
    got = (await gql(client, h(owner), move("approvePostmortem"), id=pm["id"]))["data"]["approvePostmortem"]
    assert got["__typename"] == "PermissionDeniedError" and got["code"] == "SELF_APPROVAL"
    got = (await gql(client, h(other), move("approvePostmortem"), id=pm["id"]))["data"]["approvePostmortem"]
    assert got["__typename"] == "PermissionDeniedError" and got["code"] == "NOT_APPROVER"
    # a RESTRICTED postmortem is, to a CONFIDENTIAL editor, not there
    secret = await create_pm(client, h(owner), await resolved_incident(client, admin), data_classification="RESTRICTED")
    out = await gql(client, editor, UPDATE, id=secret["id"], input={"approver": other_id})
    assert out["data"]["updatePostmortem"]["__typename"] == "NotFoundError"
    assert await status_of(bk, pm["id"]) == "IN_REVIEW"
    out = await gql(client, h(owner), UPDATE, id=pm["id"], input={"approver": other_id})
    assert out["data"]["updatePostmortem"]["approver"] == {"id": other_id}
    got = (await gql(client, h(other), move("approvePostmortem"), id=pm["id"]))["data"]["approvePostmortem"]
    assert got == {"__typename": "Postmortem", "status": "APPROVED"}


# --- 2. what the published article copies ----------------------------------------------------------

async def test_a_public_article_copies_nothing_of_a_confidential_incident(client, admin, editor, bk):
    public_viewer = await person(bk, Role.VIEWER, Classification.PUBLIC)
    tag = uuid.uuid4().hex[:8]
    inc = await resolved_incident(client, editor, category=f"Payments {tag}", data_classification="CONFIDENTIAL")
    public = await create_pm(client, editor, inc, title=f"Public lesson {tag}", data_classification="PUBLIC")
    same = await create_pm(client, editor, inc, title=f"Confidential lesson {tag}")
    arts = {}
    for pm in (public, same):
        for action, who in (("submit_for_review", editor), ("approve", admin), ("publish", editor)):
            r = await client.post(f"{BASE}{pm['id']}/{action}/", headers=who)
            assert r.status_code == 200, (action, r.text)
        arts[pm["id"]] = r.json()["knowledge_article"]["slug"]
    r = await client.get(f"{ARTICLES}{arts[public['id']]}/", headers=h(public_viewer))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data_classification"] == "PUBLIC" and body["category"] == "Postmortem"
    assert body["related_incidents"] == [] and inc["id"] not in r.text and f"Payments {tag}" not in r.text
    # at the incident's own classification, the article carries them
    body = (await client.get(f"{ARTICLES}{arts[same['id']]}/", headers=editor)).json()
    assert body["data_classification"] == "CONFIDENTIAL" and body["category"] == f"Payments {tag}"
    assert body["related_incidents"] == [inc["id"]]


# --- 3. whole-list action item writes --------------------------------------------------------------

async def test_a_whole_list_write_never_overwrites_a_single_item_edit(client, editor):
    pm = await create_pm(client, editor, await new_incident(client, editor),
                         action_items=[{"title": "Raise pool size"}, {"title": "Add alert"}])
    url = f"{BASE}{pm['id']}/"
    read = (await client.get(url, headers=editor)).json()  # the whole-list writer reads ...
    first, second = read["action_items"]
    assert read["action_items_version"]
    # ... someone marks the first item done, acknowledged ...
    r = await client.patch(f"{url}action_items/{first['id']}/", headers=editor, json={"status": "DONE"})
    assert r.status_code == 200 and r.json()["action_items_version"] != read["action_items_version"]
    # ... and the writer sends the list it read, with its own edit
    stale = [first, {**second, "title": "Add pool usage alert"}]
    r = await client.patch(url, headers=editor, json={"action_items": stale})
    assert r.status_code == 409 and r.json()["code"] == "ACTION_ITEMS_VERSION_REQUIRED", r.text
    r = await client.patch(url, headers=editor, json={"action_items": stale,
                                                      "action_items_version": read["action_items_version"]})
    assert r.status_code == 409 and r.json()["code"] == "ACTION_ITEMS_CHANGED", r.text
    r = await client.put(url, headers=editor, json={"title": pm["title"], "action_items": stale,
                                                    "action_items_version": read["action_items_version"]})
    assert r.status_code == 409 and r.json()["code"] == "ACTION_ITEMS_CHANGED", r.text
    got = (await client.get(url, headers=editor)).json()
    assert [i["status"] for i in got["action_items"]] == ["DONE", "OPEN"]
    assert got["action_items"][1]["title"] == "Add alert" and got["title"] == pm["title"]
    # read again, write with that version: accepted, the single edit kept
    fresh = [got["action_items"][0], {**got["action_items"][1], "title": "Add pool usage alert"}]
    r = await client.patch(url, headers=editor, json={"action_items": fresh,
                                                      "action_items_version": got["action_items_version"]})
    assert r.status_code == 200, r.text
    assert [(i["title"], i["status"]) for i in r.json()["action_items"]] == [("Raise pool size", "DONE"),
                                                                            ("Add pool usage alert", "OPEN")]


async def test_a_whole_list_write_is_conditional_up_to_the_moment_it_is_written(client, editor, bk, monkeypatch):
    """The single-item edit lands after the service read the postmortem and before it writes: the
    write is refused all the same, and the edit stays."""
    pm = await create_pm(client, editor, await new_incident(client, editor), action_items=[{"title": "Raise pool"}])
    url, item = f"{BASE}{pm['id']}/", pm["action_items"][0]

    async def concurrent_edit():
        await bk.mongo.postmortems.update_one({"_id": pm["id"]}, {"$set": {"action_items.0.status": "DONE"}})

    during_write(monkeypatch, concurrent_edit)
    r = await client.patch(url, headers=editor, json={"action_items": [{**item, "title": "Raise pool to 50"}],
                                                      "action_items_version": pm["action_items_version"]})
    assert r.status_code == 409 and r.json()["code"] == "ACTION_ITEMS_CHANGED", r.text
    got = (await client.get(url, headers=editor)).json()["action_items"]
    assert got == [{**item, "status": "DONE"}]


async def test_whole_list_writes_without_a_version_while_nobody_edits_items_one_by_one(client, editor):
    """Clients that never send a version keep working: a whole-list write without one is accepted while
    no item was edited one by one, and a write that leaves the list as stored is never refused."""
    pm = await create_pm(client, editor, await new_incident(client, editor), action_items=[{"title": "One"}])
    url = f"{BASE}{pm['id']}/"
    r = await client.patch(url, headers=editor, json={"action_items": [*pm["action_items"], {"title": "Two"}]})
    assert r.status_code == 200 and len(r.json()["action_items"]) == 2, r.text
    items = r.json()["action_items"]
    r = await client.patch(f"{url}action_items/{items[0]['id']}/", headers=editor, json={"status": "IN_PROGRESS"})
    assert r.status_code == 200
    read = r.json()
    # the list as read, sent back whole with other fields: nothing to lose, accepted
    r = await client.put(url, headers=editor, json={"title": "Renamed", "action_items": read["action_items"]})
    assert r.status_code == 200 and r.json()["action_items"] == read["action_items"], r.text
    assert r.json()["action_items_version"] == read["action_items_version"]
    r = await client.patch(url, headers=editor, json={"title": "Renamed again"})  # no list, no condition
    assert r.status_code == 200


async def test_graphql_whole_list_writes_are_conditional_too(client, editor):
    pm = await create_pm(client, editor, await new_incident(client, editor), action_items=[{"title": "One"}])
    item = pm["action_items"][0]
    got = await gql(client, editor, "query($id: ID!) { postmortem(id: $id) { actionItemsVersion } }", id=pm["id"])
    version = got["data"]["postmortem"]["actionItemsVersion"]
    assert version == pm["action_items_version"]
    out = await gql(client, editor, ITEM_VERSION, id=pm["id"], item=item["id"], input={"status": "DONE"})
    assert out["data"]["updatePostmortemActionItem"]["actionItemsVersion"] != version
    mine = [{"id": item["id"], "title": "One, reworded"}]
    out = await gql(client, editor, UPDATE_ITEMS, id=pm["id"], input={"actionItems": mine})
    assert out["data"]["updatePostmortem"]["code"] == "ACTION_ITEMS_VERSION_REQUIRED"
    out = await gql(client, editor, UPDATE_ITEMS, id=pm["id"],
                    input={"actionItems": mine, "actionItemsVersion": version})
    assert out["data"]["updatePostmortem"]["__typename"] == "ConflictError"
    assert out["data"]["updatePostmortem"]["code"] == "ACTION_ITEMS_CHANGED"
    got = await gql(client, editor, """query($id: ID!) {
        postmortem(id: $id) { actionItemsVersion actionItems { status } } }""", id=pm["id"])
    assert got["data"]["postmortem"]["actionItems"] == [{"status": "DONE"}]
    fresh = got["data"]["postmortem"]["actionItemsVersion"]
    out = await gql(client, editor, UPDATE_ITEMS, id=pm["id"], input={
        "actionItems": [{**mine[0], "status": "DONE"}], "actionItemsVersion": fresh})
    assert out["data"]["updatePostmortem"]["actionItems"] == [{"id": item["id"], "title": "One, reworded",
                                                               "status": "DONE"}]


async def test_a_redraft_keeps_action_items_edited_one_by_one(client, editor):
    pm = await create_pm(client, editor, await resolved_incident(client, editor), executive_summary="")
    url = f"{BASE}{pm['id']}/"
    assert (await client.post(f"{url}generate_automated/", headers=editor)).status_code == 200
    drafted = (await client.get(url, headers=editor)).json()
    assert "action_items" in drafted["auto_generated_sections"] and drafted["action_items"]
    item = drafted["action_items"][0]
    r = await client.patch(f"{url}action_items/{item['id']}/", headers=editor, json={"status": "DONE"})
    assert r.status_code == 200 and "action_items" not in r.json()["auto_generated_sections"]
    assert (await client.post(f"{url}generate_automated/", headers=editor)).status_code == 200
    got = (await client.get(url, headers=editor)).json()
    assert got["action_items"][0] == {**item, "status": "DONE"}


# --- 4. ARCHIVED is read-only ----------------------------------------------------------------------

async def test_an_archived_postmortem_is_read_only_everywhere(client, admin, editor, bk, editors):
    owner, other = editors
    pm = await create_pm(client, h(owner), await resolved_incident(client, admin), action_items=[{"title": "Alert"}])
    url, item = f"{BASE}{pm['id']}/", pm["action_items"][0]
    for action, who in (("submit_for_review", h(owner)), ("approve", admin), ("publish", h(owner)),
                        ("archive", h(owner))):
        assert (await client.post(f"{url}{action}/", headers=who)).status_code == 200, action
    for r in (await client.patch(url, headers=h(owner), json={"approver": other["user"].id}),
              await client.patch(url, headers=admin, json={"action_items": []}),
              await client.patch(f"{url}action_items/{item['id']}/", headers=admin, json={"title": "x"})):
        assert r.status_code == 409 and r.json()["code"] == "POSTMORTEM_ARCHIVED", r.text
    for name, query, variables in (
            ("updatePostmortem", UPDATE, {"input": {"lessonsLearned": "rewritten"}}),
            ("updatePostmortemActionItem", ITEM, {"item": item["id"], "input": {"status": "DONE"}})):
        out = await gql(client, admin, query, id=pm["id"], **variables)
        assert out["data"][name]["__typename"] == "ConflictError" and out["data"][name]["code"] == "POSTMORTEM_ARCHIVED"
    for action in ("archive", "submit_for_review", "publish"):  # no move out of ARCHIVED
        r = await client.post(f"{url}{action}/", headers=admin)
        assert r.status_code == 409 and r.json()["code"] == "INVALID_TRANSITION", r.text
    assert (await client.post(f"{url}generate_automated/", headers=admin)).status_code == 409
    stored = await bk.mongo.postmortems.find_one({"_id": pm["id"]})
    assert stored["status"] == "ARCHIVED" and stored.get("approver") != other["user"].id  # the approving admin
    assert stored["action_items"][0]["title"] == "Alert" and stored["action_items"][0]["status"] == "OPEN"


# --- 5. clearance ----------------------------------------------------------------------------------

async def test_nobody_writes_a_postmortem_above_their_clearance(client, admin, editor, bk):
    inc = await new_incident(client, editor)
    pm = await create_pm(client, editor, inc, data_classification="CONFIDENTIAL")
    url = f"{BASE}{pm['id']}/"
    r = await client.post(BASE, headers=editor, json={"title": "x", "incident": inc["id"],
                                                      "data_classification": "RESTRICTED"})
    assert r.status_code == 400 and r.json()["details"]["field"] == "data_classification", r.text
    for r in (await client.patch(url, headers=editor, json={"data_classification": "RESTRICTED"}),
              await client.put(url, headers=editor, json={"title": "x", "data_classification": "RESTRICTED"})):
        assert r.status_code == 400 and r.json()["details"]["field"] == "data_classification", r.text
    out = await gql(client, editor, UPDATE, id=pm["id"], input={"dataClassification": "RESTRICTED"})
    assert out["data"]["updatePostmortem"]["field"] == "data_classification"
    assert (await bk.mongo.postmortems.find_one({"_id": pm["id"]}))["data_classification"] == "CONFIDENTIAL"
    # a postmortem above the editor's clearance: every write is a 404, like a missing one, nothing changed
    secret = await create_pm(client, admin, inc, data_classification="RESTRICTED", action_items=[{"title": "s"}])
    surl = f"{BASE}{secret['id']}/"
    for r in (await client.patch(surl, headers=editor, json={"title": "overwritten"}),
              await client.put(surl, headers=editor, json={"title": "overwritten"}),
              await client.patch(f"{surl}action_items/{secret['action_items'][0]['id']}/", headers=editor,
                                 json={"title": "overwritten"}),
              await client.post(f"{surl}submit_for_review/", headers=editor)):
        assert r.status_code == 404 and r.json()["code"] == "POSTMORTEM_NOT_FOUND", r.text
    # deleting is for admins: an editor is refused before anything is looked up, hidden or not, alike
    hidden, seen = await client.delete(surl, headers=editor), await client.delete(url, headers=editor)
    assert hidden.status_code == seen.status_code == 403 and hidden.json() == seen.json(), hidden.text
    out = await gql(client, editor, UPDATE, id=secret["id"], input={"title": "overwritten"})
    assert out["data"]["updatePostmortem"]["__typename"] == "NotFoundError"
    stored = await bk.mongo.postmortems.find_one({"_id": secret["id"]})
    assert stored["title"] == secret["title"] and stored["status"] == "DRAFT"
    assert stored["action_items"][0]["title"] == "s"


async def test_a_postmortem_reclassified_above_the_writer_mid_request_is_not_written(client, editor, bk,
                                                                                     monkeypatch):
    pm = await create_pm(client, editor, await new_incident(client, editor))

    async def reclassify():
        await bk.mongo.postmortems.update_one({"_id": pm["id"]}, {"$set": {"data_classification": "RESTRICTED"}})

    during_write(monkeypatch, reclassify)
    r = await client.patch(f"{BASE}{pm['id']}/", headers=editor, json={"title": "overwritten"})
    assert r.status_code == 404 and r.json()["code"] == "POSTMORTEM_NOT_FOUND", r.text
    assert (await bk.mongo.postmortems.find_one({"_id": pm["id"]}))["title"] == pm["title"]

"""Tracked action items: stable ids, status, one-by-one updates (REST and GraphQL), overdue figures."""

from __future__ import annotations

import uuid

from tests.incidents.test_graphql import gql
from tests.postmortems.test_rest import BASE, create_pm, new_incident

ITEM = {"title": "Update database connection pool settings",
        "description": "Increase connection pool size to handle peak load", "priority": "HIGH",
        "assignee": "database.team", "due_date": "2024-01-29T00:00:00Z", "category": "Technical Improvement"}


async def stats(client, headers) -> int:
    r = await client.get(f"{BASE}statistics/", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["overdue_action_items"]


async def test_ids_assigned_kept_and_documented_item(client, editor):
    inc = await new_incident(client, editor)
    kept = str(uuid.uuid4())
    pm = await create_pm(client, editor, inc, action_items=[ITEM, {"id": kept, "title": "Add alert"}])
    first, second = pm["action_items"]
    assert first == {**ITEM, "id": first["id"], "status": "OPEN", "automation": None} and uuid.UUID(first["id"])
    assert second["id"] == kept and second["status"] == "OPEN" and second["priority"] == "MEDIUM"
    # PATCH keeps ids that are sent and assigns new ones to items without
    r = await client.patch(f"{BASE}{pm['id']}/", headers=editor,
                           json={"action_items": [first, {"title": "New one", "status": "IN_PROGRESS"}]})
    assert r.status_code == 200, r.text
    items = r.json()["action_items"]
    assert items[0]["id"] == first["id"] and items[1]["id"] not in (first["id"], kept)
    assert items[1]["status"] == "IN_PROGRESS"
    # PUT too
    r = await client.put(f"{BASE}{pm['id']}/", headers=editor, json={"title": "Replaced", "action_items": items})
    assert [i["id"] for i in r.json()["action_items"]] == [i["id"] for i in items]
    # refused: bad status, bad priority, unknown field, duplicate ids, an id that is not a uuid, no title
    for bad in ([{**ITEM, "status": "CLOSED"}], [{**ITEM, "priority": "URGENT"}], [{**ITEM, "owner": "x"}],
                [{"id": kept, "title": "a"}, {"id": kept, "title": "b"}], [{"id": "../x", "title": "a"}],
                [{"description": "no title"}], ["just text"]):
        r = await client.patch(f"{BASE}{pm['id']}/", headers=editor, json={"action_items": bad})
        assert r.status_code == 400, (bad, r.text)
    assert (await client.get(f"{BASE}{pm['id']}/", headers=editor)).json()["action_items"] == items


async def test_patch_one_item_and_refusals(client, editor, admin, viewer, bk):
    inc = await new_incident(client, editor)
    pm = await create_pm(client, editor, inc, action_items=[ITEM, {"title": "Second"}])
    item, other = pm["action_items"]
    url = f"{BASE}{pm['id']}/action_items/{item['id']}/"
    before_overdue = await stats(client, admin)

    r = await client.patch(url, headers=editor, json={"status": "IN_PROGRESS", "assignee": "dba.oncall"})
    assert r.status_code == 200, r.text
    got = r.json()["action_items"]
    assert got[0] == {**item, "status": "IN_PROGRESS", "assignee": "dba.oncall"} and got[1] == other
    audit = await bk.mongo.audit_log.find_one({"subject_id": pm["id"], "action": "update_action_item"})
    assert audit and audit["changes"]["action_item"] == item["id"] and audit["changes"]["status"] == "IN_PROGRESS"

    # refused, nothing changed: invalid status, null title, unknown field
    for body in ({"status": "CLOSED"}, {"title": None}, {"id": str(uuid.uuid4())}, {"status": "done"}):
        r = await client.patch(url, headers=editor, json=body)
        assert r.status_code == 400, (body, r.text)
    assert (await client.get(f"{BASE}{pm['id']}/", headers=editor)).json()["action_items"] == got
    # a viewer may not; an unknown item, an item of another postmortem, a hidden postmortem: 404
    assert (await client.patch(url, headers=viewer, json={"status": "DONE"})).status_code == 403
    r = await client.patch(f"{BASE}{pm['id']}/action_items/{uuid.uuid4()}/", headers=editor, json={"status": "DONE"})
    assert r.status_code == 404 and r.json()["code"] == "ACTION_ITEM_NOT_FOUND"
    pm2 = await create_pm(client, editor, inc, action_items=[{"title": "elsewhere"}])
    r = await client.patch(f"{BASE}{pm2['id']}/action_items/{item['id']}/", headers=editor, json={"status": "DONE"})
    assert r.status_code == 404
    assert (await client.get(f"{BASE}{pm2['id']}/", headers=editor)).json()["action_items"][0]["status"] == "OPEN"
    secret = await create_pm(client, admin, inc, data_classification="RESTRICTED", action_items=[{"title": "s"}])
    r = await client.patch(f"{BASE}{secret['id']}/action_items/{secret['action_items'][0]['id']}/", headers=editor,
                           json={"status": "DONE"})
    assert r.status_code == 404 and r.json()["code"] == "POSTMORTEM_NOT_FOUND"

    # overdue items: the first is past due and not done; DONE and WONT_DO are not overdue
    assert await stats(client, admin) == before_overdue
    r = await client.patch(url, headers=editor, json={"status": "DONE"})
    assert r.status_code == 200
    assert await stats(client, admin) == before_overdue - 1
    r = await client.patch(url, headers=editor, json={"status": "OPEN", "due_date": None})
    assert r.json()["action_items"][0]["due_date"] is None
    assert await stats(client, admin) == before_overdue - 1


async def test_overdue_items_follow_clearance(client, admin, viewer):
    inc = await new_incident(client, admin, data_classification="RESTRICTED")
    base_admin, base_viewer = await stats(client, admin), await stats(client, viewer)
    await create_pm(client, admin, inc, action_items=[ITEM, {**ITEM, "status": "WONT_DO"}, {**ITEM, "due_date": None}])
    assert await stats(client, admin) == base_admin + 1
    assert await stats(client, viewer) == base_viewer


async def test_graphql_update_action_item(client, editor, viewer):
    inc = await new_incident(client, editor)
    pm = await create_pm(client, editor, inc, action_items=[ITEM])
    item = pm["action_items"][0]
    mutation = """mutation($id: ID!, $item: ID!, $input: UpdateActionItemInput!) {
        updatePostmortemActionItem(id: $id, itemId: $item, input: $input) {
          __typename ... on Postmortem { actionItems { id title description priority assignee dueDate category status } }
          ... on UserError { code message field } } }"""
    out = await gql(client, editor, mutation, id=pm["id"], item=item["id"],
                    input={"status": "WONT_DO", "dueDate": "2030-01-01T00:00:00+01:00"})
    got = out["data"]["updatePostmortemActionItem"]
    assert got["__typename"] == "Postmortem"
    assert got["actionItems"][0] == {"id": item["id"], "title": item["title"], "description": item["description"],
                                     "priority": item["priority"], "assignee": item["assignee"],
                                     "dueDate": "2029-12-31T23:00:00Z", "category": item["category"],
                                     "status": "WONT_DO"}
    out = await gql(client, editor, mutation, id=pm["id"], item=str(uuid.uuid4()), input={"status": "DONE"})
    assert out["data"]["updatePostmortemActionItem"]["code"] == "ACTION_ITEM_NOT_FOUND"
    out = await gql(client, viewer, mutation, id=pm["id"], item=item["id"], input={"status": "DONE"})
    assert out["data"]["updatePostmortemActionItem"]["__typename"] == "PermissionDeniedError"
    out = await gql(client, editor, mutation, id=pm["id"], item=item["id"], input={"title": ""})
    assert out["data"]["updatePostmortemActionItem"]["__typename"] == "ValidationError"
    out = await gql(client, editor, mutation, id=pm["id"], item=item["id"], input={"status": "CLOSED"})
    assert "errors" in out  # not a value of the enum
    out = await gql(client, viewer, "{ postmortemStatistics { overdueActionItems } }")
    assert isinstance(out["data"]["postmortemStatistics"]["overdueActionItems"], int)


async def test_graphql_action_items_are_typed_both_ways(client, editor):
    inc = await new_incident(client, editor)
    mutation = """mutation($input: CreatePostmortemInput!) { createPostmortem(input: $input) {
        __typename ... on Postmortem { actionItems { id title priority dueDate status } }
        ... on UserError { code field details } } }"""
    out = await gql(client, editor, mutation, input={"title": "Typed", "incident": inc["id"], "actionItems": [
        {"title": "Add alert", "priority": "HIGH", "dueDate": "2030-01-01T00:00:00Z"}]})
    items = out["data"]["createPostmortem"]["actionItems"]
    assert items[0]["title"] == "Add alert" and items[0]["priority"] == "HIGH" and items[0]["status"] == "OPEN"
    assert items[0]["dueDate"] == "2030-01-01T00:00:00Z" and uuid.UUID(items[0]["id"])
    out = await gql(client, editor, mutation, input={"title": "Typed", "incident": inc["id"], "actionItems": [
        {"title": ""}]})
    assert out["data"]["createPostmortem"]["__typename"] == "ValidationError"

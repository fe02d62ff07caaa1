"""Postmortems through GraphQL: the same service as REST, the workflow as mutations with typed errors."""

from __future__ import annotations

import uuid

from tests.incidents.test_graphql import gql
from tests.postmortems.test_rest import new_incident

FIELDS = """id title status severity incidentTitle completionPercentage isOverdue publishedAt dueDate
            dataClassification owner { username } approver { username } reviewers { username } incident { id }"""
CREATE = f"""mutation($input: CreatePostmortemInput!) {{ createPostmortem(input: $input) {{
  __typename ... on Postmortem {{ {FIELDS} }} ... on UserError {{ code message field details }} }} }}"""


def move(name: str) -> str:
    return f"""mutation($id: ID!) {{ {name}(id: $id) {{ __typename ... on Postmortem {{ status publishedAt }}
      ... on UserError {{ code message details }} }} }}"""


async def test_create_query_and_workflow(client, editor, admin, viewer, tokens):
    inc = await new_incident(client, editor, severity="HIGH")
    tag = uuid.uuid4().hex[:10]
    out = await gql(client, editor, CREATE, input={"title": f"Postmortem {tag}", "incident": inc["id"],
                                                   "executiveSummary": "Summary", "timeline": [{"event": "x"}]})
    pm = out["data"]["createPostmortem"]
    assert pm["__typename"] == "Postmortem" and pm["status"] == "DRAFT" and pm["severity"] == "HIGH"
    assert pm["incidentTitle"] == inc["title"] and pm["incident"]["id"] == inc["id"]
    assert pm["owner"]["username"] == tokens["editor_user"].username and pm["completionPercentage"] == 33.3
    assert pm["isOverdue"] is False and pm["dataClassification"] == "INTERNAL"

    out = await gql(client, editor, move("approvePostmortem"), id=pm["id"])
    err = out["data"]["approvePostmortem"]
    assert err["__typename"] == "ConflictError" and err["code"] == "INVALID_TRANSITION"
    assert err["details"]["allowed"] == ["IN_REVIEW"]
    for name, status in (("submitPostmortemForReview", "IN_REVIEW"), ("requestPostmortemChanges", "DRAFT"),
                         ("submitPostmortemForReview", "IN_REVIEW")):
        assert (await gql(client, editor, move(name), id=pm["id"]))["data"][name]["status"] == status
    err = (await gql(client, editor, move("approvePostmortem"), id=pm["id"]))["data"]["approvePostmortem"]
    assert err["__typename"] == "PermissionDeniedError"
    assert (await gql(client, admin, move("approvePostmortem"), id=pm["id"]))["data"]["approvePostmortem"][
        "status"] == "APPROVED"
    done = (await gql(client, editor, move("publishPostmortem"), id=pm["id"]))["data"]["publishPostmortem"]
    assert done["status"] == "PUBLISHED" and done["publishedAt"].endswith("Z")
    assert (await gql(client, editor, move("archivePostmortem"), id=pm["id"]))["data"]["archivePostmortem"][
        "status"] == "ARCHIVED"

    out = await gql(client, viewer, """query($s: String!) {
        postmortems(search: $s, status: [ARCHIVED], ordering: "-severity") { totalCount results { id status } }
        postmortemStatistics { totalPostmortems byStatus bySeverity automatedPercentage overdueCount
                               avgCompletionTime } }""", s=tag)
    assert out["data"]["postmortems"] == {"totalCount": 1, "results": [{"id": pm["id"], "status": "ARCHIVED"}]}
    stats = out["data"]["postmortemStatistics"]
    assert set(stats["byStatus"]) == {"DRAFT", "IN_REVIEW", "APPROVED", "PUBLISHED", "ARCHIVED"}
    assert stats["avgCompletionTime"] is not None
    got = await gql(client, viewer, "query($id: ID!) { postmortem(id: $id) { title } }", id=pm["id"])
    assert got["data"]["postmortem"]["title"] == f"Postmortem {tag}"


async def test_update_overdue_and_hidden(client, editor, admin, viewer):
    inc = await new_incident(client, editor)
    out = await gql(client, editor, CREATE, input={"title": "late", "incident": inc["id"],
                                                   "dueDate": "2024-01-29T00:00:00+02:00",
                                                   "dataClassification": "CONFIDENTIAL"})
    pm = out["data"]["createPostmortem"]
    assert pm["dueDate"] == "2024-01-28T22:00:00Z" and pm["isOverdue"] is True
    out = await gql(client, editor, """mutation($id: ID!) { updatePostmortem(id: $id,
        input: {lessonsLearned: "Check pools", dataClassification: RESTRICTED}) {
        __typename ... on UserError { field } } }""", id=pm["id"])
    assert out["data"]["updatePostmortem"] == {"__typename": "ValidationError", "field": "data_classification"}
    out = await gql(client, editor, """mutation($id: ID!) { updatePostmortem(id: $id,
        input: {lessonsLearned: "Check pools"}) { ... on Postmortem { completionPercentage } } }""", id=pm["id"])
    assert out["data"]["updatePostmortem"]["completionPercentage"] == 16.7
    out = await gql(client, editor, "{ overduePostmortems(pageSize: 100) { results { id isOverdue } } }")
    assert {"id": pm["id"], "isOverdue": True} in out["data"]["overduePostmortems"]["results"]
    # hidden from the INTERNAL viewer: exactly like a missing one
    out = await gql(client, viewer, "query($id: ID!) { postmortem(id: $id) { id } }", id=pm["id"])
    assert out["errors"][0]["extensions"]["code"] == "POSTMORTEM_NOT_FOUND"
    out = await gql(client, viewer, "{ overduePostmortems(pageSize: 100) { results { id } } }")
    assert pm["id"] not in [p["id"] for p in out["data"]["overduePostmortems"]["results"]]
    secret = await new_incident(client, admin, data_classification="RESTRICTED")
    out = await gql(client, editor, CREATE, input={"title": "x", "incident": secret["id"]})
    assert out["data"]["createPostmortem"]["code"] == "INCIDENT_NOT_FOUND"

"""Postmortems through GraphQL: the same service as REST, the workflow as mutations with typed errors."""

from __future__ import annotations

import uuid

from tests.incidents.test_graphql import gql
from tests.postmortems.test_generations import run_or_wait
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
    # "Summary" and a timeline of one "x" are filled in, not complete (33.3 when any content counted)
    assert pm["owner"]["username"] == tokens["editor_user"].username and pm["completionPercentage"] == 0.0
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


GEN_FIELDS = """id status generationTrigger includeTimeline includeLogs attempts confidenceScore processingTime
                generatedSections errorMessage createdAt startedAt completedAt incident { id } requestedBy { username }
                postmortem { id isAutomated }"""
START = f"""mutation($input: StartPostmortemGenerationInput!) {{ startPostmortemGeneration(input: $input) {{
  __typename ... on PostmortemGeneration {{ {GEN_FIELDS} }} ... on UserError {{ code message field }} }} }}"""


async def test_generation_jobs(client, editor, viewer, tokens, bk):
    inc = await new_incident(client, editor, severity="HIGH", root_cause="Disk full")
    out = await gql(client, editor, START, input={"incidentId": inc["id"], "includeLogs": False,
                                                  "generationTrigger": "MANUAL"})
    gen = out["data"]["startPostmortemGeneration"]
    assert gen["__typename"] == "PostmortemGeneration" and gen["status"] == "PENDING", out
    assert gen["generationTrigger"] == "MANUAL" and gen["includeLogs"] is False and gen["postmortem"] is None
    assert gen["requestedBy"]["username"] == tokens["editor_user"].username and gen["incident"]["id"] == inc["id"]
    again = (await gql(client, editor, START, input={"incidentId": inc["id"]}))["data"]["startPostmortemGeneration"]
    assert again["id"] == gen["id"]  # one running generation per incident
    # what a worker does, or waits for the session's worker that claimed it first from the queue the mutation sent
    # it to (CI's run of ee07108 read PROCESSING here: generations.run had returned None)
    await run_or_wait(bk, gen["id"])

    query = f"""query($id: ID!, $inc: ID) {{ postmortemGeneration(id: $id) {{ {GEN_FIELDS} }}
      postmortemGenerations(incident: $inc, status: [COMPLETED, REVIEW_REQUIRED], ordering: "-completed_at") {{
        totalCount results {{ id }} }} }}"""
    data = (await gql(client, viewer, query, id=gen["id"], inc=inc["id"]))["data"]
    done = data["postmortemGeneration"]
    assert done["status"] in ("COMPLETED", "REVIEW_REQUIRED") and done["attempts"] == 1 and done["processingTime"] >= 0
    assert done["postmortem"]["isAutomated"] and "executive_summary" in done["generatedSections"]
    assert data["postmortemGenerations"]["totalCount"] == 1 and data["postmortemGenerations"]["results"][0]["id"] == gen["id"]

    # typed errors: a viewer may not start one; an unknown incident; the reserved trigger; retrying a finished one
    out = await gql(client, viewer, START, input={"incidentId": inc["id"]})
    assert out["data"]["startPostmortemGeneration"]["code"] == "PERMISSION_DENIED"
    out = await gql(client, editor, START, input={"incidentId": "nope"})
    assert out["data"]["startPostmortemGeneration"]["code"] == "INCIDENT_NOT_FOUND"
    out = await gql(client, editor, START, input={"incidentId": inc["id"], "generationTrigger": "INCIDENT_RESOLVED"})
    assert out["data"]["startPostmortemGeneration"]["__typename"] == "ValidationError"
    retry = """mutation($id: ID!) { retryPostmortemGeneration(id: $id) { __typename ... on UserError { code } } }"""
    out = await gql(client, editor, retry, id=gen["id"])
    assert out["data"]["retryPostmortemGeneration"]["code"] == "INVALID_TRANSITION"

    # a CONFIDENTIAL incident's generation is missing for a viewer, exactly like an unknown id
    secret = await new_incident(client, editor, severity="HIGH", data_classification="CONFIDENTIAL")
    hidden = (await gql(client, editor, START, input={"incidentId": secret["id"]}))["data"]["startPostmortemGeneration"]
    one = "query($id: ID!) { postmortemGeneration(id: $id) { id } }"
    for gen_id in (hidden["id"], "no-such-generation"):
        out = await gql(client, viewer, one, id=gen_id)
        assert out["data"] is None and out["errors"][0]["extensions"]["code"] == "GENERATION_NOT_FOUND"
    out = await gql(client, viewer, "query($inc: ID) { postmortemGenerations(incident: $inc) { totalCount } }",
                    inc=secret["id"])
    assert out["data"]["postmortemGenerations"]["totalCount"] == 0

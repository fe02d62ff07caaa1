"""Learning patterns and clearances: nobody classifies a pattern above their own clearance or drops sources they
cannot see; a pattern's `history` is shown only as far as the reader could have seen what each entry holds;
`frequency` follows the source incidents whenever they change."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import unique
from tests.incidents.test_graphql import gql
from tests.patterns.test_rest import BASE, pattern
from tests.postmortems.test_rest import create_pm, new_incident

READ = """query($id: ID!) { learningPattern(id: $id) { id name description triggers history { at by action before } frequency
  dataClassification sourceIncidents { id } sourcePostmortems { id } } }"""
CREATE = """mutation($input: LearningPatternInput!) { createLearningPattern(input: $input) { __typename
  ... on LearningPattern { id dataClassification } ... on UserError { code field } } }"""
UPDATE = """mutation($id: ID!, $input: UpdateLearningPatternInput!) { updateLearningPattern(id: $id, input: $input) {
  __typename ... on LearningPattern { id dataClassification } ... on UserError { code field } } }"""


async def _user(bk, role: str, clearance: str) -> dict:
    from app.users.models import Classification, Role, UserCreate
    from app.users.service import create_user, issue_token

    user = await create_user(bk, data=UserCreate(username=f"{role}-{uuid.uuid4().hex[:6]}", role=Role(role),
                                                 clearance=Classification(clearance)))
    return {"Authorization": f"Token {await issue_token(bk, user=user)}"}


@pytest.fixture(scope="module")
async def internal_admin(bk):
    return await _user(bk, "admin", "INTERNAL")


@pytest.fixture(scope="module")
async def public_viewer(bk):
    return await _user(bk, "viewer", "PUBLIC")


# --- clearance ------------------------------------------------------------------------------------------

async def test_nobody_classifies_a_pattern_above_their_clearance(client, admin, internal_admin):
    for level in ("CONFIDENTIAL", "RESTRICTED"):
        r = await client.post(BASE, headers=internal_admin, json={"name": unique("Too secret"), "pattern_type":
                                                                  "ROOT_CAUSE", "data_classification": level})
        assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR", r.text
        assert r.json()["details"]["field"] == "data_classification"
        out = await gql(client, internal_admin, CREATE,
                        input={"name": unique("Too secret"), "patternType": "ROOT_CAUSE", "dataClassification": level})
        assert out["data"]["createLearningPattern"] == {"__typename": "ValidationError", "code": "VALIDATION_ERROR",
                                                        "field": "data_classification"}
    p = await pattern(client, internal_admin, data_classification="INTERNAL")
    r = await client.patch(f"{BASE}{p['id']}/", headers=internal_admin, json={"data_classification": "RESTRICTED"})
    assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR", r.text
    r = await client.put(f"{BASE}{p['id']}/", headers=internal_admin,
                         json={"name": p["name"], "pattern_type": "ROOT_CAUSE", "data_classification": "RESTRICTED"})
    assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR", r.text
    out = await gql(client, internal_admin, UPDATE, id=p["id"], input={"dataClassification": "RESTRICTED"})
    assert out["data"]["updateLearningPattern"]["__typename"] == "ValidationError"
    now = (await client.get(f"{BASE}{p['id']}/", headers=admin)).json()
    assert now["data_classification"] == "INTERNAL" and now["updated_at"] == p["updated_at"]
    # at or below one's clearance: fine, both ways
    r = await client.patch(f"{BASE}{p['id']}/", headers=internal_admin, json={"data_classification": "PUBLIC"})
    assert r.status_code == 200 and r.json()["data_classification"] == "PUBLIC"
    out = await gql(client, admin, UPDATE, id=p["id"], input={"dataClassification": "RESTRICTED"})
    assert out["data"]["updateLearningPattern"]["dataClassification"] == "RESTRICTED"


async def test_sources_the_writer_cannot_see_are_kept(client, admin, internal_admin):
    seen, other = await new_incident(client, admin), await new_incident(client, admin)
    hidden = await new_incident(client, admin, data_classification="CONFIDENTIAL")
    hidden_pm = await create_pm(client, admin, hidden, data_classification="CONFIDENTIAL")
    p = await pattern(client, admin, source_incidents=[seen["id"], hidden["id"]], source_postmortems=[hidden_pm["id"]],
                      data_classification="INTERNAL")
    r = await client.patch(f"{BASE}{p['id']}/", headers=internal_admin,
                           json={"source_incidents": [other["id"]], "source_postmortems": []})
    assert r.status_code == 200 and r.json()["source_incidents"] == [other["id"]], r.text
    full = (await client.get(f"{BASE}{p['id']}/", headers=admin)).json()
    assert full["source_incidents"] == [other["id"], hidden["id"]] and full["source_postmortems"] == [hidden_pm["id"]]
    assert full["frequency"] == 2


# --- history ----------------------------------------------------------------------------------------------

async def test_a_declassified_pattern_shows_no_secret_history(client, admin, public_viewer):
    """The issue's scenario: a RESTRICTED pattern, validated, sanitised and declassified to PUBLIC."""
    secret = await new_incident(client, admin, data_classification="RESTRICTED")
    body = {"name": "Secret name X", "pattern_type": "ROOT_CAUSE", "description": "secret X",
            "triggers": ["secret-trigger-X"], "actions": ["act"], "source_incidents": [secret["id"]],
            "data_classification": "RESTRICTED"}
    r = await client.post(BASE, headers=admin, json=body)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = await client.post(f"{BASE}{pid}/validate/", headers=admin, json={"validation_notes": "ok"})
    assert r.status_code == 200, r.text
    r = await client.patch(f"{BASE}{pid}/", headers=admin, json={
        "name": "Public name X", "description": "sanitised", "triggers": ["public"], "source_incidents": [],
        "data_classification": "PUBLIC"})
    assert r.status_code == 200 and r.json()["history"][0]["before"]["name"] == "Secret name X", r.text  # the admin

    r = await client.get(f"{BASE}{pid}/", headers=public_viewer)
    assert r.status_code == 200 and r.json()["name"] == "Public name X", r.text
    for leak in ("Secret name X", "secret-trigger-X", "secret X", secret["id"]):
        assert leak not in r.text, leak
    assert r.json()["history"] == []
    listed = await client.get(BASE, headers=public_viewer, params={"search": "Public name X", "page_size": 100})
    assert pid in listed.text and "Secret name X" not in listed.text and secret["id"] not in listed.text
    out = await gql(client, public_viewer, READ, id=pid)
    assert out["data"]["learningPattern"]["history"] == [], out
    for leak in ("Secret name X", "secret-trigger-X", secret["id"]):
        assert leak not in json.dumps(out), leak

    # what happens after it became PUBLIC is PUBLIC history
    r = await client.patch(f"{BASE}{pid}/", headers=admin, json={"description": "sanitised again"})
    assert len(r.json()["history"]) == 2
    hist = (await client.get(f"{BASE}{pid}/", headers=public_viewer)).json()["history"]
    assert [h["before"] for h in hist] == [{"description": "sanitised"}]
    out = await gql(client, public_viewer, READ, id=pid)
    assert [h["before"] for h in out["data"]["learningPattern"]["history"]] == [{"description": "sanitised"}]


async def test_history_names_only_the_sources_the_reader_may_see(client, admin, public_viewer):
    public = await new_incident(client, admin, data_classification="PUBLIC")
    secret = await new_incident(client, admin, data_classification="RESTRICTED")
    secret_pm = await create_pm(client, admin, secret, data_classification="RESTRICTED")
    p = await pattern(client, admin, source_incidents=[public["id"], secret["id"]],
                      source_postmortems=[secret_pm["id"]], data_classification="PUBLIC")
    await client.post(f"{BASE}{p['id']}/validate/", headers=admin, json={"validation_notes": "ok"})
    r = await client.patch(f"{BASE}{p['id']}/", headers=admin,
                           json={"source_incidents": [public["id"]], "source_postmortems": []})
    assert r.status_code == 200, r.text
    before = r.json()["history"][0]["before"]
    assert before["source_incidents"] == [public["id"], secret["id"]]
    assert before["source_postmortems"] == [secret_pm["id"]]

    r = await client.get(f"{BASE}{p['id']}/", headers=public_viewer)
    assert r.status_code == 200
    [entry] = r.json()["history"]
    assert entry["before"]["source_incidents"] == [public["id"]] and entry["before"]["source_postmortems"] == []
    assert secret["id"] not in r.text and secret_pm["id"] not in r.text
    out = await gql(client, public_viewer, READ, id=p["id"])
    [entry] = out["data"]["learningPattern"]["history"]
    assert entry["before"]["sourceIncidents"] == [public["id"]] and entry["before"]["sourcePostmortems"] == []
    assert secret["id"] not in json.dumps(out) and secret_pm["id"] not in json.dumps(out)


# --- frequency --------------------------------------------------------------------------------------------

async def test_frequency_follows_the_source_incidents(client, admin):
    a, b, c = [await new_incident(client, admin) for _ in range(3)]
    p = await pattern(client, admin, source_incidents=[a["id"], b["id"]])
    assert p["frequency"] == 2
    r = await client.patch(f"{BASE}{p['id']}/", headers=admin, json={"source_incidents": [a["id"]]})
    assert r.status_code == 200 and r.json()["frequency"] == 1, r.text
    r = await client.patch(f"{BASE}{p['id']}/", headers=admin, json={"source_incidents": [a["id"], c["id"], a["id"]]})
    assert r.json()["source_incidents"] == [a["id"], c["id"]] and r.json()["frequency"] == 2  # each source once
    r = await client.patch(f"{BASE}{p['id']}/", headers=admin, json={"source_postmortems": []})
    assert r.json()["frequency"] == 2
    # an admin's own figure, sent with the sources, stands (as on creation)
    r = await client.patch(f"{BASE}{p['id']}/", headers=admin, json={"source_incidents": [b["id"]], "frequency": 7})
    assert r.json()["frequency"] == 7
    r = await client.put(f"{BASE}{p['id']}/", headers=admin, json={"name": p["name"], "pattern_type": "ROOT_CAUSE",
                                                                 "source_incidents": [a["id"], b["id"], c["id"]]})
    assert r.json()["frequency"] == 3
    out = await gql(client, admin, """mutation($id: ID!, $input: UpdateLearningPatternInput!) {
      updateLearningPattern(id: $id, input: $input) { ... on LearningPattern { frequency } } }""",
                    id=p["id"], input={"sourceIncidents": [c["id"]]})
    assert out["data"]["updateLearningPattern"]["frequency"] == 1
    other = await pattern(client, admin, source_incidents=[a["id"], c["id"]])
    r = await client.post(f"{BASE}{p['id']}/merge/", headers=admin, json={"other": other["id"]})
    assert r.json()["source_incidents"] == [c["id"], a["id"]] and r.json()["frequency"] == 2

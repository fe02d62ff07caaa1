"""Learning patterns through GraphQL: the same service as REST, typed errors, sources through DataLoaders."""

from __future__ import annotations

from tests.conftest import unique
from tests.incidents.test_graphql import gql
from tests.postmortems.test_rest import new_incident

FIELDS = """id name patternType frequency isValidated validationNotes timesApplied triggers actions history { at by action before }
            sourceIncidents { id } sourcePostmortems { id } validatedBy { username }"""
CREATE = f"""mutation($input: LearningPatternInput!) {{ createLearningPattern(input: $input) {{ __typename
  ... on LearningPattern {{ {FIELDS} }} ... on UserError {{ code message field }} }} }}"""


async def test_manage_validate_apply_merge_and_read(client, admin, editor, viewer):
    internal = await new_incident(client, admin)
    secret = await new_incident(client, admin, data_classification="CONFIDENTIAL")
    out = await gql(client, admin, CREATE, input={"name": unique("Cert expiry"), "patternType": "PREVENTION",
                                                  "triggers": ["TLS handshake failures"],
                                                  "actions": ["renew certificates early"],
                                                  "sourceIncidents": [internal["id"], secret["id"]],
                                                  "dataClassification": "INTERNAL"})
    p = out["data"]["createLearningPattern"]
    assert p["__typename"] == "LearningPattern" and p["frequency"] == 2, out
    out = await gql(client, viewer, CREATE, input={"name": "x", "patternType": "ROOT_CAUSE"})
    assert out["data"]["createLearningPattern"]["code"] == "PERMISSION_DENIED"

    read = f"""query($id: ID!) {{ learningPattern(id: $id) {{ {FIELDS} }} }}"""
    seen = (await gql(client, viewer, read, id=p["id"]))["data"]["learningPattern"]
    assert [i["id"] for i in seen["sourceIncidents"]] == [internal["id"]]  # the secret one is not shown
    assert len((await gql(client, admin, read, id=p["id"]))["data"]["learningPattern"]["sourceIncidents"]) == 2

    validate = """mutation($id: ID!) { validateLearningPattern(id: $id, validationNotes: "checked") { __typename
      ... on LearningPattern { isValidated validationNotes validatedBy { username } } ... on UserError { code } } }"""
    assert (await gql(client, editor, validate, id=p["id"]))["data"]["validateLearningPattern"]["code"] == \
        "PERMISSION_DENIED"
    v = (await gql(client, admin, validate, id=p["id"]))["data"]["validateLearningPattern"]
    assert v["isValidated"] and v["validationNotes"] == "checked" and v["validatedBy"]["username"]

    update = """mutation($id: ID!, $input: UpdateLearningPatternInput!) { updateLearningPattern(id: $id, input: $input) {
      __typename ... on LearningPattern { triggers history { at by action before } } ... on UserError { code field } } }"""
    u = (await gql(client, admin, update, id=p["id"], input={"triggers": ["TLS errors"]}))["data"]["updateLearningPattern"]
    assert u["triggers"] == ["TLS errors"] and u["history"][0]["before"] == {"triggers": ["TLS handshake failures"]}

    apply = """mutation($id: ID!, $inc: ID) { applyLearningPattern(id: $id, incidentId: $inc) { __typename
      ... on LearningPattern { timesApplied } ... on UserError { code } } }"""
    assert (await gql(client, editor, apply, id=p["id"], inc=internal["id"]))["data"]["applyLearningPattern"][
        "timesApplied"] == 1

    other = (await gql(client, admin, CREATE, input={"name": unique("Cert expiry 2"), "patternType": "PREVENTION",
                                                     "actions": ["renew 30 days ahead"]}))["data"]["createLearningPattern"]
    merge = """mutation($id: ID!, $o: ID!) { mergeLearningPatterns(id: $id, other: $o) { __typename
      ... on LearningPattern { actions history { at by action before } } ... on UserError { code } } }"""
    m = (await gql(client, admin, merge, id=p["id"], o=other["id"]))["data"]["mergeLearningPatterns"]
    assert m["actions"] == ["renew certificates early", "renew 30 days ahead"] and m["history"][-1]["action"].startswith("merge")

    q = """{ learningPatterns(patternType: [PREVENTION], isValidated: true, ordering: "-frequency") {
      totalCount results { id } } learningPatternStatistics { totalPatterns byType validatedShare } }"""
    data = (await gql(client, viewer, q))["data"]
    assert p["id"] in {r["id"] for r in data["learningPatterns"]["results"]}
    assert data["learningPatternStatistics"]["byType"]["PREVENTION"] >= 1

    delete = """mutation($id: ID!) { deleteLearningPattern(id: $id) { __typename ... on Deleted { id }
      ... on UserError { code } } }"""
    assert (await gql(client, editor, delete, id=p["id"]))["data"]["deleteLearningPattern"]["code"] == \
        "PERMISSION_DENIED"
    assert (await gql(client, admin, delete, id=p["id"]))["data"]["deleteLearningPattern"]["id"] == p["id"]
    assert (await gql(client, admin, delete, id=p["id"]))["data"]["deleteLearningPattern"]["code"] == \
        "PATTERN_NOT_FOUND"


async def test_start_a_mining_run(client, admin, editor):
    start = """mutation($d: Int!, $f: Int!) { startPatternMining(days: $d, minFrequency: $f) { __typename
      ... on MiningStarted { message } ... on UserError { code field } } }"""
    assert (await gql(client, editor, start, d=30, f=3))["data"]["startPatternMining"]["code"] == "PERMISSION_DENIED"
    for d, f in ((0, 3), (30, 1)):
        out = await gql(client, admin, start, d=d, f=f)
        assert out["data"]["startPatternMining"]["__typename"] == "ValidationError", (d, f)
    out = await gql(client, admin, start, d=30, f=3)
    assert out["data"]["startPatternMining"]["__typename"] == "MiningStarted"
    assert out["data"]["startPatternMining"]["message"] in (  # one run at a time (tests/patterns/test_run_records.py)
        "Learning pattern mining started", "A learning pattern mining run is already running")

"""GraphQL speaks camelCase everywhere, JSON outputs included (`mostApplied`, `feedbackOverTime`, generation
`evidence`), and every timestamp is the DateTime scalar (`LearningPattern.history.at`)."""

from __future__ import annotations

import json
import re

SNAKE = re.compile(r'"[a-z][a-z0-9]*(?:_[a-z0-9]+)+"\s*:')


async def gql(client, headers, query, variables=None):
    r = await client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
    body = r.json()
    assert r.status_code == 200 and not body.get("errors"), body
    return body["data"]


async def test_statistics_json_outputs_have_camel_case_keys(client, admin):
    data = await gql(client, admin, """{
      recommendationStatistics { byType averageEffectivenessByType feedbackOverTime }
      learningPatternStatistics { byType mostApplied averageSuccessRateByType weeklyOccurrences }
      postmortemGenerations(pageSize: 5) { results { evidence } } }""")
    text = json.dumps(data)
    assert not SNAKE.findall(text), SNAKE.findall(text)[:5]


async def test_a_pattern_change_is_typed_with_a_datetime(client, admin):
    created = await gql(client, admin, """mutation { createLearningPattern(input: {name: "camel-case history check",
        patternType: ROOT_CAUSE, description: "d", triggers: ["a_trigger"], actions: ["act"]}) {
        ... on LearningPattern { id } } }""")
    pid = created["createLearningPattern"]["id"]
    await gql(client, admin, 'mutation($id: ID!) { validateLearningPattern(id: $id, validationNotes: "ok") { __typename } }',
              {"id": pid})
    await gql(client, admin, 'mutation($id: ID!) { updateLearningPattern(id: $id, input: {triggers: ["b"]}) '
                             '{ __typename } }', {"id": pid})
    got = await gql(client, admin, 'query($id: ID!) { learningPattern(id: $id) { history { at by action before } } }',
                    {"id": pid})
    change = got["learningPattern"]["history"][-1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)", change["at"]), change
    assert change["before"] == {"triggers": ["a_trigger"]} and change["by"]

"""GraphQL input types are made from the REST bodies' pydantic models (schema/inputs.py): every field of a
model is in its input, a field REST takes GraphQL takes too, with the same rules; a PATCH input changes only
what was sent."""

from __future__ import annotations

from typing import Literal

import pytest
import strawberry
from graphql import GraphQLInputObjectType

from app.incidents.models import IncidentCreate
from app.inputs import InputModel
from schema import inputs
from schema.schema import schema
from tests.conftest import unique
from tests.incidents.test_graphql import CREATE, gql


def _input_fields(name: str) -> set[str]:
    return {f.python_name for f in schema.get_type_by_name(name).fields}


@pytest.mark.parametrize("name,model", [(n, m) for n, m in inputs.MADE.items()])
def test_every_input_has_every_field_of_its_model(name, model):
    assert _input_fields(name) == set(model.model_fields), name


def test_every_input_of_the_schema_is_made_from_a_model():
    written = {name for name, t in schema._schema.type_map.items()
               if isinstance(t, GraphQLInputObjectType) and name not in inputs.MADE}
    assert not written, f"input types written by hand: {written}"


async def test_a_field_rest_takes_graphql_takes_too(client, editor):
    """resolved_at was once missing from the hand-written CreateIncidentInput."""
    out = await gql(client, editor, CREATE, input={"title": "Imported, already over", "name": unique("gqlin"),
                                                   "status": "RESOLVED", "resolvedAt": "2026-01-02T03:04:05Z",
                                                   "detectedAt": "2026-01-02T01:00:00Z"})
    created = out["data"]["createIncident"]
    assert created["__typename"] == "Incident", created
    r = await client.get(f"/api/v1/incidents/{created['name']}/", headers=editor)
    assert r.json()["resolved_at"] == "2026-01-02T03:04:05Z"


async def test_the_models_rules_apply_and_a_patch_changes_only_what_was_sent(client, editor):
    bad = await gql(client, editor, CREATE, input={"title": " ", "name": unique("gqlin")})
    err = bad["data"]["createIncident"]
    assert err["__typename"] == "ValidationError" and err["field"] == "title", err  # the model's min_length

    name = unique("gqlin")
    await gql(client, editor, CREATE, input={"title": "Checkout latency", "name": name, "category": "database",
                                             "tags": ["db", "latency"]})
    patch = """mutation($name: String!, $input: UpdateIncidentInput!) { updateIncident(name: $name, input: $input) {
      __typename ... on Incident { title category tags assignee } ... on UserError { code field } } }"""
    out = (await gql(client, editor, patch, name=name, input={"assignee": "dana"}))["data"]["updateIncident"]
    assert out == {"__typename": "Incident", "title": "Checkout latency", "category": "database",
                   "tags": ["db", "latency"], "assignee": "dana"}
    cleared = (await gql(client, editor, patch, name=name, input={"assignee": None}))["data"]["updateIncident"]
    assert cleared["assignee"] is None and cleared["category"] == "database"
    refused = (await gql(client, editor, patch, name=name, input={"title": None}))["data"]["updateIncident"]
    assert refused["__typename"] == "ValidationError" and refused["field"] == "title", refused


def test_a_field_without_a_graphql_type_is_refused_not_guessed():
    class Odd(InputModel):
        mode: Literal["a", "b"]

    with pytest.raises(TypeError, match=r"OddInput.mode \(Odd\)"):
        inputs.input_type(Odd, "OddInput")

    @strawberry.enum
    class Mode(str, __import__("enum").Enum):
        A = "a"
        B = "b"

    made = inputs.input_type(Odd, "OddInput", types={"mode": Mode})
    assert [f.python_name for f in made.__strawberry_definition__.fields] == ["mode"]
    assert inputs.MADE.pop("OddInput") is Odd
    assert IncidentCreate in inputs.MADE.values()

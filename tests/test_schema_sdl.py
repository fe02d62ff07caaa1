"""The checked-in SDL is the schema the service serves (regenerate with
`.venv/bin/strawberry export-schema schema.schema:schema --output schema/schema.graphql`)."""

from pathlib import Path

from strawberry.printer import print_schema


def test_checked_in_sdl_is_current():
    from schema.schema import schema

    checked_in = (Path(__file__).resolve().parent.parent / "schema" / "schema.graphql").read_text()
    assert print_schema(schema).strip() == checked_in.strip(), "schema/schema.graphql is stale: re-export it"

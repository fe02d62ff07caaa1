"""What every domain's output models (`app/<domain>/outputs.py`) share. Output models describe what the REST
API answers: the OpenAPI document (app/http/openapi.py) is generated from them, and the test suite checks
every real response against that document. They are not used to build responses (the serializers do), so
they must say exactly what the serializers write: `extra="forbid"` makes a field that is answered but not
described break the contract."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class Output(BaseModel):
    model_config = ConfigDict(extra="forbid")


# A timestamp as the API writes it (app/timefmt.isoz, Django REST framework's way): ISO 8601 in UTC with a
# `Z`, microseconds only when there are some.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"}, examples=["2024-01-15T10:30:00Z"],
                                  pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")]
# A JSON object whose keys are not fixed (free-form details, counts by value).
JsonObject = dict[str, Any]


def examples(*values: dict[str, Any]) -> ConfigDict:
    """An output model's config with examples (taken from the API documentation where it has one)."""
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(values)})

"""GraphQL input types made from the domains' pydantic input models, so the two cannot drift: a field added
to a model is in the GraphQL input too, with its description, default and nullability, and the resolver
validates what it got with the same model (schema/common.py `validate`: one set of rules).

    CreateIncidentInput = input_type(IncidentCreate, "CreateIncidentInput")
    UpdateIncidentInput = input_type(IncidentUpdate, "UpdateIncidentInput", partial=True)

How a model's field becomes a GraphQL field:
- its type: str, int, float, bool, datetime as they are (a pydantic URL or e-mail type is a String); an enum
  as the GraphQL enum it is registered as (`strawberry.enum`); a list of any of these; a nested input model
  as the input type made from it before (`input_type` remembers each); free-form JSON (a dict, a list of
  anything) as JSON; the fields named in `ids` as ID; a `Literal` or anything else has to be given in
  `types` (the generator refuses to guess);
- required when the model requires it; otherwise with the model's default (a default factory is called
  once, for the default shown in the schema; free-form JSON with a default factory is left UNSET instead);
- `partial` (a PATCH model, where a field left out stays as it is and one sent as null may mean "clear
  it"): every field optional and UNSET unless sent, so the model sees only what was sent.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import strawberry
from pydantic import AnyUrl, BaseModel, EmailStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from strawberry.scalars import JSON

MADE: dict[str, type[BaseModel]] = {}  # every input type made: its name -> its model
_WHOLE: dict[type[BaseModel], type] = {}  # model -> the input type made from it (not partial), for nesting
_SCALARS = (str, int, float, bool, dt.datetime)


def input_type(model: type[BaseModel], name: str, *, partial: bool = False, ids: tuple[str, ...] = (),
               types: dict[str, Any] | None = None, description: str | None = None) -> type:
    """The Strawberry input type `name` with the fields of `model` (see the module's docstring)."""
    types = types or {}
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        where = f"{name}.{field_name} ({model.__name__})"
        gql = types.get(field_name) or _graphql_type(info.annotation, id_=field_name in ids, where=where)
        # free-form JSON's default is the model's (a JSON value is no default a schema can print)
        unset = partial or (gql is JSON and info.default_factory is not None)
        annotations[field_name] = gql | None if unset or _optional(info.annotation) else gql
        namespace[field_name] = strawberry.field(description=info.description, **_default(info, unset))
    cls = type(name, (), {"__annotations__": annotations, **namespace, "__module__": __name__})
    made = strawberry.input(cls, name=name, description=description)
    MADE[name] = model
    if not partial:
        _WHOLE.setdefault(model, made)
    return made


def _default(info: FieldInfo, unset: bool) -> dict[str, Any]:
    if unset:
        return {"default": strawberry.UNSET}
    if info.default_factory is not None:
        value = info.default_factory()
        return {"default_factory": lambda: list(value) if isinstance(value, list) else value}
    if info.default is PydanticUndefined:
        return {}
    return {"default": info.default}


def _optional(annotation: Any) -> bool:
    annotation = _bare(annotation)
    return get_origin(annotation) in (Union, UnionType) and type(None) in get_args(annotation)


def _bare(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _graphql_type(annotation: Any, *, id_: bool, where: str) -> Any:
    annotation = _bare(annotation)
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _graphql_type(args[0], id_=id_, where=where)
    elif origin is list:
        (item,) = get_args(annotation) or (Any,)
        return JSON if _bare(item) is Any else list[_graphql_type(item, id_=id_, where=where)]
    elif origin is dict or annotation is dict:
        return JSON
    elif origin is Literal:
        pass
    elif isinstance(annotation, type):
        if issubclass(annotation, BaseModel) and annotation in _WHOLE:
            return _WHOLE[annotation]
        if issubclass(annotation, Enum) and hasattr(annotation, "__strawberry_definition__"):
            return annotation
        if issubclass(annotation, str) and id_:
            return strawberry.ID
        if issubclass(annotation, _SCALARS):
            return annotation
        if issubclass(annotation, (AnyUrl, EmailStr)):  # validated from a string, written as one
            return str
    raise TypeError(f"{where}: no GraphQL type for {annotation!r}; give it in `types`")

"""The OpenAPI 3.1 document of the REST API, generated from the resource declarations (app/http/resources.py)
and the models the routes validate bodies with — never written beside them.

Every path of every declared resource is in it, with the trailing slash (both spellings answer). For each
operation: its query parameters (a list's filters, search, ordering and paging from its `ListSpec`; the
others from its `Param`s), its request body (the input model), its 2xx response (the output model; a DRF
page `count/next/previous/results` for a list) and the errors it may answer, all in one `Error` schema
(`{error, details, code}`). Examples come from the API documentation, carried by the models themselves.

Served at `GET /openapi.json` without credentials: it describes the API, it holds no data.
"""

from __future__ import annotations

import functools
import typing
from enum import Enum
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.http.resources import Op, Resource, allowed
from app.inputs import Param
from app.listing import Filter, ListSpec
from app.inputs import MAX_SEARCH_CHARS
from app.settings import Settings
from app.users.models import Role

TITLE = "Incident knowledge & learning API"
DESCRIPTION = """REST API of the incident knowledge & learning service (the GraphQL API is at `/graphql`).

Sign in with `Authorization: Token <key>` (`ikl create_token NAME` prints a key), a session
(`POST /api/auth/login/`; unsafe methods then need `X-CSRFToken`), or an SSO `Authorization: Bearer <JWT>`.
Every path answers with and without its trailing slash. Errors are `{"error", "details", "code"}` with a 4xx status; lists are DRF
pages (`count`, `next`, `previous`, `results`; `?page=`, `?page_size=`)."""


class Error(BaseModel):
    """Every error the API answers: a sentence, what it concerns, and a stable code."""

    model_config = ConfigDict(title="Error", json_schema_extra={"examples": [
        {"error": "Invalid request data", "details": {"title": "Field required"}, "code": "VALIDATION_ERROR"}]})
    error: str = Field(description="What went wrong, in a sentence")
    details: Any = Field(description="What it concerns: fields, limits, allowed values (or null)")
    code: str = Field(description="A stable code to branch on, e.g. NOT_FOUND, VALIDATION_ERROR, RATE_LIMITED")


# The errors, by status: the shared response component of each.
ERRORS = {
    400: ("BadRequest", "The body or a parameter is not valid; `details` names the fields."),
    401: ("Unauthorized", "No valid credentials."),
    403: ("Forbidden", "The caller's role does not allow this operation."),
    404: ("NotFound", "No such item, or one the caller may not see (answered alike)."),
    409: ("Conflict", "The item's state does not allow the operation (`error` says what is needed first)."),
    422: ("Unprocessable", "Understood but not done: the result would not hold (e.g. a draft naming facts the "
                           "incident data does not hold)."),
    413: ("PayloadTooLarge", "The body is larger than the service accepts."),
    415: ("UnsupportedMediaType", "The body is not `application/json`."),
    429: ("TooManyRequests", "Rate limited; `Retry-After` says when to try again."),
    500: ("InternalError", "An unexpected failure, masked: `details.request_id` finds it in the logs."),
    503: ("ServiceUnavailable", "A backend is down or the request ran out of time; retry later."),
}
SECURITY_SCHEMES = {
    "TokenAuth": {"type": "apiKey", "in": "header", "name": "Authorization",
                  "description": "`Token <key>`: the word Token, a space, then the key (`ikl create_token NAME`)."},
    "SessionAuth": {"type": "apiKey", "in": "cookie", "name": "sessionid",
                    "description": "The session cookie `POST /api/auth/login/` sets (HttpOnly). Requests other "
                                   "than GET, HEAD, OPTIONS must also send the header `X-CSRFToken` with the value "
                                   "of the `csrftoken` cookie set beside it, else 403 `CSRF_FAILED`."},
    "SSO": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "`Bearer <JWT>`: an OpenID Connect ID token of a configured provider (`IKL_OIDC_PROVIDERS`)."},
}


# One event of a text/event-stream response (each event's `data` is JSON: the operation says what).
SSE_EVENT = {"type": "object", "properties": {
    "event": {"type": "string"}, "data": {"type": "string", "contentMediaType": "application/json"},
    "id": {"type": "string"}, "retry": {"type": "integer"}}}


def _model_of(response: Any) -> tuple[type[BaseModel] | None, bool]:
    """(the model, whether the body is a list of it) of an operation's `response`."""
    if response is None or isinstance(response, str):  # none, or a media type ("text/event-stream")
        return None, False
    if typing.get_origin(response) is list:
        return typing.get_args(response)[0], True
    return response, False


def _models(resources: Iterable[Resource]) -> list[tuple[type[BaseModel], str]]:
    out: list[tuple[type[BaseModel], str]] = [(Error, "serialization")]
    for resource in resources:
        for _, methods, _ in resource.paths():
            for op in methods.values():
                if op.body is not None:
                    out += [(model, "validation") for model in (op.body, *getattr(op.body, "ALSO", ()))]
                if (model := _model_of(op.response)[0]) is not None:
                    out.append((model, "serialization"))
    return list(dict.fromkeys(out))


def _filter_schema(f: Filter) -> dict[str, Any]:
    kind = f.kind
    if isinstance(kind, type) and issubclass(kind, Enum):
        values = [m.value for m in kind]
        return {"type": "string", "description": f"One of {', '.join(values)}, or a comma list of them",
                "examples": [values[0]]}
    if kind is bool:
        return {"type": "boolean"}
    if kind is int:
        return {"type": "integer"}
    if kind == "uuid":
        return {"type": "string", "format": "uuid"}
    return {"type": "string"}


def _or_empty(param: dict[str, Any]) -> dict[str, Any]:
    """An empty value (`?page_size=`) is the parameter not given, as DRF's filters take it: say so."""
    schema = param["schema"]
    if schema.get("type") != "string":
        param["schema"] = {"anyOf": [schema, {"type": "string", "maxLength": 0}]}
    return param


def _list_params(spec: ListSpec, settings: Settings) -> list[dict[str, Any]]:
    params = [{"name": f.param, "in": "query", "required": False, "schema": _filter_schema(f),
               "description": f.description or f"Only those whose `{f.field}` is this value"} for f in spec.filters]
    if spec.search_fields:
        params.append({"name": "search", "in": "query", "required": False,
                       "schema": {"type": "string", "maxLength": MAX_SEARCH_CHARS},
                       "description": f"Every word must appear in one of: {', '.join(spec.search_fields)}"})
    if spec.ordering:
        names = sorted(spec.ordering)
        params.append({"name": "ordering", "in": "query", "required": False, "schema": {"type": "string"},
                       "description": f"A comma list of {', '.join(names)}; `-` first for descending "
                                      f"(default `{','.join(spec.default_ordering)}`)"})
    params += [
        {"name": "page", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1},
         "description": "The page (a page past the last is a 404)"},
        {"name": "page_size", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": settings.max_page_size,
                    "default": settings.page_size}, "description": "Items per page"},
    ]
    return params


def _param(p: Param) -> dict[str, Any]:
    if p.kind is int:
        schema: dict[str, Any] = {"type": "integer"}
        if p.low is not None:
            schema["minimum"] = p.low
        if p.high is not None:
            schema["maximum"] = p.high
    else:
        schema = {"type": "string", "maxLength": p.max_length}
    if p.default is not None and not isinstance(p.default, list):
        schema["default"] = p.default
    description = p.description
    if p.enum:
        description += f" (a comma list of {', '.join(p.enum)})"
    return {"name": p.name, "in": "query", "required": False, "schema": schema, "description": description.strip()}


def _path_params(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}} for n in names]


def _operation(resource: Resource, path: str, method: str, op: Op, refs: dict, settings: Settings,
               on_item: bool, tag: str) -> dict[str, Any]:
    summary, description = op.describe()
    name = path[len(resource.base):].strip("/").replace("{", "").replace("}", "").replace("/", "_")
    out: dict[str, Any] = {"tags": [tag], "summary": summary,
                           "operationId": f"{tag}_{name or 'collection'}_{method.lower()}".replace("-", "_")}
    if description:
        out["description"] = description
    rule = op.rule
    if rule.role is not Role.VIEWER or rule.clearance is not None:
        needs = f"the role `{rule.role.value}` or above" + (
            f" and the clearance `{rule.clearance.value}`" if rule.clearance is not None else "")
        out["description"] = (out.get("description", "") + f"\n\nNeeds {needs}.").strip()
    if rule.ownership:
        out["description"] = (out.get("description", "") + f"\n\nOwnership: {rule.ownership}.").strip()
    params = _path_params(path)
    if op.listing is not None:
        params += [_or_empty(p) for p in _list_params(op.listing, settings)]
    params += [_or_empty(_param(p)) for p in op.query]
    if params:
        out["parameters"] = params
    if op.body is not None:
        shapes = [refs[(model, "validation")] for model in (op.body, *getattr(op.body, "ALSO", ()))]
        out["requestBody"] = {"required": any(f.is_required() for f in op.body.model_fields.values()), "content": {
            "application/json": {"schema": shapes[0] if len(shapes) == 1 else {"oneOf": shapes}}}}
    model, many = _model_of(op.response)
    if op.status == 204:
        out["responses"] = {"204": {"description": "Done; no content"}}
    elif op.response == "text/event-stream":
        out["responses"] = {str(op.status): {"description": "A stream of Server-Sent Events", "content": {
            "text/event-stream": {"schema": SSE_EVENT}}}}
    else:
        content: dict[str, Any] = {}
        if model is not None:
            schema = refs[(model, "serialization")]
            if op.listing is not None:
                schema = {"$ref": f"#/components/schemas/{_page_name(model)}"}
            elif many:
                schema = {"type": "array", "items": schema}
            content = {"application/json": {"schema": schema}}
        out["responses"] = {str(status): {"description": "Success", **({"content": content} if content else {})}
                            for status in (op.status, *op.also)}
    errors = {400, 401, 429, 500, 503, *op.errors}
    if rule.role is not Role.VIEWER or rule.clearance is not None or method in ("POST", "PUT", "PATCH", "DELETE"):
        errors.add(403)  # the role; or, on a session, a missing or wrong X-CSRFToken (CSRF_FAILED)
    if on_item:
        errors.add(404)
    if op.listing is not None:
        errors.add(404)  # a page past the last
    if op.body is not None:
        errors.update((413, 415))
    for status in sorted(errors):
        out["responses"][str(status)] = {"$ref": f"#/components/responses/{ERRORS[status][0]}"}
    out["security"] = [{scheme: []} for scheme in SECURITY_SCHEMES]
    return out


def _page_name(model: type[BaseModel]) -> str:
    return f"Paginated{model.__name__}List"


def _page_schema(model_ref: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["count", "next", "previous", "results"], "additionalProperties": False,
            "properties": {"count": {"type": "integer", "minimum": 0, "examples": [25]},
                           "next": {"type": ["string", "null"], "format": "uri",
                                    "examples": ["http://api.example.com/api/knowledge/postmortems/?page=2"]},
                           "previous": {"type": ["string", "null"], "format": "uri", "examples": [None]},
                           "results": {"type": "array", "items": model_ref}}}


def build(resources: Iterable[Resource], settings: Settings) -> dict[str, Any]:
    resources = list(resources)
    refs, defs = models_json_schema(_models(resources), ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    paths: dict[str, Any] = {}
    tags: dict[str, str] = {}
    for resource in resources:
        tag = resource.tag or resource.base.rsplit("/", 1)[-1]
        tags.setdefault(tag, resource.description)
        for path, methods, on_item in resource.paths():
            item: dict[str, Any] = {}
            for method in allowed(methods):
                if method == "HEAD":
                    continue
                op = methods[method]
                item[method.lower()] = _operation(resource, path, method, op, refs, settings, on_item, tag)
                model, _ = _model_of(op.response)
                if op.listing is not None and model is not None:
                    schemas[_page_name(model)] = _page_schema(refs[(model, "serialization")])
            paths[path] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": _version(), "description": DESCRIPTION},
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "tags": [{"name": t, **({"description": d} if d else {})} for t, d in tags.items()],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": {name: {"description": text, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
                for name, text in ERRORS.values()},
            "securitySchemes": SECURITY_SCHEMES,
        },
        "security": [{scheme: []} for scheme in SECURITY_SCHEMES],
    }


@functools.cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("incident-knowledge")
    except PackageNotFoundError:
        return "0.0.0"


def endpoint(resources: list[Resource], settings: Settings):
    """GET /openapi.json: the document, built once per process."""
    document: dict[str, Any] = {}

    async def openapi_json(request: Request) -> Response:
        if not document:
            document.update(build(resources, settings))
        return JSONResponse(document, headers={"Cache-Control": "no-cache"})

    return openapi_json

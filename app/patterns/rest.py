"""REST routes under /api/knowledge/learning-patterns/ (and its mining runs): the resources' declarations
(app/http/resources.py), their operations (call the service) and their serializers."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from app.backends import Backends
from app.http.resources import Call, Op, Resource
from app.inputs import Param
from app.http.responses import documented
from app.listing import Page
from app.patterns import run_records, service
from app.patterns.models import ApplyRequest, MergeRequest, PatternContent, PatternUpdate, ValidateRequest
from app.patterns.outputs import LearningPattern, LearningPatternStatistics, MiningRun
from app.timefmt import isoz
from app.users import service as users
from app.users.models import Role, User

BASE = "/api/knowledge/learning-patterns/"
FIELDS = ("name", "pattern_type", "description", "frequency", "success_rate", "confidence_score", "is_validated",
          "validated_by", "validation_notes", "times_applied", "data_classification")
LISTS = ("triggers", "actions", "outcomes")
DATES = ("last_applied", "validated_at", "created_at", "updated_at")


async def serialize(bk: Backends, user: User, docs: list[dict]) -> list[dict[str, Any]]:
    """The documented LearningPattern; sources and history only as far as the reader may see them."""
    found_incidents, found_pms = await service.visible_sources(bk, docs, user)
    ids = {d["validated_by"] for d in docs if d.get("validated_by")}
    people = await users.users_by_ids(bk, ids=list(ids)) if ids else {}
    out = []
    for d in docs:
        item: dict[str, Any] = {"id": d["_id"], **documented(d, fields=FIELDS, lists=LISTS, dates=DATES)}
        item["validated_by_username"] = users.username(people, d.get("validated_by"))
        item["source_incidents"] = [i for i in d.get("source_incidents") or [] if i in found_incidents]
        item["source_postmortems"] = [i for i in d.get("source_postmortems") or [] if i in found_pms]
        item["history"] = [{**h, "at": isoz(h.get("at"))} for h in service.readable_history(
            d, user, incidents=found_incidents, postmortems=found_pms)]
        out.append(item)
    return out


async def create(call: Call) -> dict:
    """Create a learning pattern."""
    return await call.one(await service.create_pattern(call.bk, data=call.body, user=call.user))


async def list_patterns(call: Call) -> Page:
    """List the learning patterns the caller may see."""
    return await service.list_patterns(call.bk, params=call.params, user=call.user)


async def detail(call: Call) -> dict:
    """Get a learning pattern."""
    return await call.one(await service.get_pattern(call.bk, pattern_id=call.key, user=call.user))


async def delete(call: Call) -> Response:
    """Delete a learning pattern."""
    await service.delete_pattern(call.bk, pattern_id=call.key, user=call.user)
    return Response(status_code=204)


def _update(replace: bool):
    async def run(call: Call) -> dict:
        return await call.one(await service.update_pattern(call.bk, pattern_id=call.key, data=call.body,
                                                           user=call.user, replace=replace))
    run.__doc__ = ("Replace a learning pattern (fields left out get their defaults)." if replace else
                   "Update some fields of a learning pattern.")
    return run


def _action(fn, summary: str):
    async def run(call: Call) -> dict:
        return await call.one(await fn(call.bk, pattern_id=call.key, data=call.body, user=call.user))
    run.__doc__ = summary
    return run


async def statistics(call: Call) -> dict:
    """Get learning-pattern statistics: by type, validated, most applied, success rates, weekly occurrences."""
    return await service.statistics(call.bk, user=call.user, weeks=call.arg("weeks"))


# --- mining runs (admins) ---------------------------------------------------------------------------

RUNS = BASE + "mining_runs/"
RUN_FIELDS = ("status", "trigger", "days", "min_frequency", "incidents", "eligible", "duplicates_skipped",
              "counts", "patterns", "processing_time", "error_message", "data_classification")
RUN_DATES = ("started_at", "claimed_at", "completed_at", "leased_until")


async def serialize_runs(bk: Backends, user: User, docs: list[dict]) -> list[dict[str, Any]]:
    ids = {d["requested_by"] for d in docs if d.get("requested_by")}
    people = await users.users_by_ids(bk, ids=list(ids)) if ids else {}
    out = []
    for d in docs:
        item: dict[str, Any] = {"id": d["_id"], **documented(d, fields=RUN_FIELDS, dates=RUN_DATES)}
        item["requested_by"] = d.get("requested_by")
        item["requested_by_username"] = users.username(people, d.get("requested_by"))
        out.append(item)
    return out


async def mining_runs(call: Call) -> Page:
    """List the pattern mining runs, newest first."""
    return await run_records.list_runs(call.bk, params=call.params, user=call.user)


async def mining_run(call: Call) -> dict:
    """Get a pattern mining run and its outcome."""
    return await call.one(await run_records.get_run(call.bk, run_id=call.key, user=call.user))


WEEKS = Param("weeks", int, description="The window of `weekly_occurrences`, in weeks", default=12, low=1, high=104)
TAG = "learning-patterns"
DESCRIPTION = ("Learning patterns: recurring causes, fixes and preventions mined from incidents, validated by admins "
               "and applied by editors.")
validate = _action(service.validate, "Validate a learning pattern, with notes (one without actions is refused).")
apply = _action(service.apply, "Record that a learning pattern was applied (to an incident, when one is named).")
merge = _action(service.merge, "Merge another learning pattern into this one; the other is deleted.")

RUNS_RESOURCE = Resource(
    base=RUNS.rstrip("/"), serialize=serialize_runs, tag="mining-runs",
    description="Pattern mining runs (admins): each run of the mining that creates and updates learning patterns, "
                "and its outcome.",
    collection={"GET": Op(mining_runs, Role.ADMIN, response=MiningRun, listing=run_records.LIST_SPEC)},
    item={"GET": Op(mining_run, Role.ADMIN, response=MiningRun)})
RESOURCE = Resource(
    base=BASE.rstrip("/"), serialize=serialize, tag=TAG, description=DESCRIPTION,
    collection={"GET": Op(list_patterns, response=LearningPattern, listing=service.LIST_SPEC),
                "POST": Op(create, Role.ADMIN, PatternContent, status=201, response=LearningPattern)},
    views={"statistics": {"GET": Op(statistics, response=LearningPatternStatistics, query=(WEEKS,))}},
    item={"GET": Op(detail, response=LearningPattern),
          "PUT": Op(_update(True), Role.ADMIN, PatternContent, response=LearningPattern, errors=(409,)),
          "PATCH": Op(_update(False), Role.ADMIN, PatternUpdate, response=LearningPattern, errors=(409,)),
          "DELETE": Op(delete, Role.ADMIN, status=204)},
    actions={"validate": {"POST": Op(validate, Role.ADMIN, ValidateRequest, response=LearningPattern, errors=(409,))},
             "apply": {"POST": Op(apply, Role.EDITOR, ApplyRequest, response=LearningPattern, errors=(409,))},
             "merge": {"POST": Op(merge, Role.ADMIN, MergeRequest, response=LearningPattern, errors=(409,))}})
RESOURCES = [RUNS_RESOURCE, RESOURCE]  # the runs first: the patterns' `{id}/` would take "mining_runs" for an id

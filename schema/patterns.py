"""Learning patterns in GraphQL: queries, mutations and types. Resolvers only call app.patterns.service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app.patterns import run_records, runs, service
from app.patterns.models import (ApplyRequest, MergeRequest, MiningRequest, PatternContent, PatternType,
                                 PatternUpdate, ValidateRequest)
from app.patterns.run_records import RunStatus, RunTrigger
from app.permissions import permit
from app.users.models import Classification, Role
from schema.articles import UserType, _person
from schema.common import ClassificationEnum, Paginated, camel_keys, list_params, paginated, validate
from schema.context import Info
from schema.inputs import input_type
from schema.errors import NotFoundError, PermissionDeniedError, ValidationError, result, typed_errors
from schema.limits import RUN_PATTERNS_MAX, SOURCES_MAX  # the bounds the cost analysis counts on
from schema.incidents import Incident, IncidentByIdLoader
from schema.postmortems import Postmortem, PostmortemByIdLoader

PatternTypeEnum = strawberry.enum(PatternType, name="LearningPatternType")
RunStatusEnum = strawberry.enum(RunStatus, name="PatternMiningRunStatus")
RunTriggerEnum = strawberry.enum(RunTrigger, name="PatternMiningRunTrigger")


async def _loaded(info: Info, name: str, factory, ids: list[str]) -> list[dict]:
    docs = await info.context.loader(name, factory).load_many(ids) if ids else []
    return [d for d in docs if d is not None]


async def _history(root: "LearningPattern", info: Info) -> list["PatternChange"]:
    """Only the entries, and the sources they name, that the caller may see (service.readable_history)."""
    named = {f: list(set(service.named_sources(root._doc, f))) for f in service.SOURCES}  # _doc: the history only
    found_incidents = await _loaded(info, "IncidentByIdLoader", IncidentByIdLoader, named["source_incidents"])
    found_pms = await _loaded(info, "PostmortemByIdLoader", PostmortemByIdLoader, named["source_postmortems"])
    entries = service.readable_history(root._doc, info.context.user, incidents={d["_id"] for d in found_incidents},
                                       postmortems={d["_id"] for d in found_pms})
    return [PatternChange(at=h.get("at"), by=h.get("by"), action=h.get("action") or "",
                          before=camel_keys(h.get("before") or {})) for h in entries]


@strawberry.type(description="A change made to a pattern after its validation, with what it replaced.")
class PatternChange:
    at: datetime | None
    by: strawberry.ID | None = strawberry.field(description="The id of the user (or bot) who made it.")
    action: str
    before: JSON = strawberry.field(description="The fields it changed, as they were (camelCase names).")


@strawberry.type(description="A recurring cause, fix or prevention, mined or written by an admin.")
class LearningPattern:
    id: strawberry.ID
    name: str
    pattern_type: PatternTypeEnum
    description: str
    frequency: int
    success_rate: float
    confidence_score: float
    triggers: list[str]
    actions: list[str]
    outcomes: list[str]
    is_validated: bool
    validation_notes: str
    validated_at: datetime | None
    times_applied: int
    last_applied: datetime | None
    data_classification: ClassificationEnum
    history: list[PatternChange] = strawberry.field(resolver=_history, description="Changes made after validation.")
    created_at: datetime
    updated_at: datetime
    _doc: strawberry.Private[dict[str, Any]]
    _incidents: strawberry.Private[list[str]]
    _postmortems: strawberry.Private[list[str]]
    _validated_by: strawberry.Private[str | None]

    @strawberry.field(description="The source incidents the caller may see.")
    async def source_incidents(self, info: Info) -> list[Incident]:
        return [Incident.from_doc(d) for d in await _loaded(info, "IncidentByIdLoader", IncidentByIdLoader,
                                                            self._incidents[:SOURCES_MAX])]

    @strawberry.field(description="The source postmortems the caller may see.")
    async def source_postmortems(self, info: Info) -> list[Postmortem]:
        return [Postmortem.from_doc(d) for d in await _loaded(info, "PostmortemByIdLoader", PostmortemByIdLoader,
                                                              self._postmortems[:SOURCES_MAX])]

    @strawberry.field
    async def validated_by(self, info: Info) -> UserType | None:
        return await _person(info, self._validated_by)

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "LearningPattern":
        return cls(id=d["_id"], name=d["name"], pattern_type=PatternType(d["pattern_type"]),
                   description=d.get("description") or "", frequency=d.get("frequency") or 0,
                   success_rate=d.get("success_rate") or 0.0, confidence_score=d.get("confidence_score") or 0.0,
                   triggers=d.get("triggers") or [], actions=d.get("actions") or [], outcomes=d.get("outcomes") or [],
                   is_validated=bool(d.get("is_validated")), validation_notes=d.get("validation_notes") or "",
                   validated_at=d.get("validated_at"), times_applied=d.get("times_applied") or 0,
                   last_applied=d.get("last_applied"),
                   data_classification=Classification(d.get("data_classification", Classification.INTERNAL.value)),
                   created_at=d["created_at"], updated_at=d["updated_at"],
                   _doc={k: d.get(k) for k in ("history", "data_classification")},
                   _incidents=d.get("source_incidents") or [],
                   _postmortems=d.get("source_postmortems") or [], _validated_by=d.get("validated_by"))


@strawberry.type
class LearningPatternStatistics:
    total_patterns: int
    by_type: JSON
    validated_count: int
    validated_share: float
    most_applied: JSON
    average_success_rate_by_type: JSON
    weekly_occurrences: JSON = strawberry.field(description="Per pattern: [{week (its Monday), occurrences}].")
    window_weeks: int


SOURCE_IDS = ("source_incidents", "source_postmortems")
LearningPatternInput = input_type(PatternContent, "LearningPatternInput", ids=SOURCE_IDS)
UpdateLearningPatternInput = input_type(PatternUpdate, "UpdateLearningPatternInput", partial=True, ids=SOURCE_IDS)


PatternResult = result("LearningPatternResult", LearningPattern)


@strawberry.type
class Deleted:
    id: strawberry.ID


DeleteResult = result("DeleteLearningPatternResult", Deleted, NotFoundError, PermissionDeniedError)


@strawberry.type
class PatternQuery:
    @strawberry.field(description="Learning patterns, filtered, searched, ordered and paginated like the REST list.")
    async def learning_patterns(self, info: Info, pattern_type: list[PatternTypeEnum] | None = None,
                                is_validated: bool | None = None, search: str | None = None,
                                ordering: str | None = None, page: int = 1,
                                page_size: int = 20) -> Paginated[LearningPattern]:
        params = list_params(pattern_type=pattern_type, is_validated=is_validated, search=search, ordering=ordering,
                             page=page, page_size=page_size)
        return paginated(await service.list_patterns(info.context.backends, params=params, user=info.context.user),
                         LearningPattern.from_doc)

    @strawberry.field
    async def learning_pattern(self, info: Info, id: strawberry.ID) -> LearningPattern:
        return LearningPattern.from_doc(await service.get_pattern(info.context.backends, pattern_id=id,
                                                                  user=info.context.user))

    @strawberry.field
    async def learning_pattern_statistics(self, info: Info, weeks: int = 12) -> LearningPatternStatistics:
        figures = await service.statistics(info.context.backends, user=info.context.user, weeks=weeks)
        return LearningPatternStatistics(**{k: camel_keys(v) if isinstance(v, (dict, list)) else v
                                            for k, v in figures.items()})


@strawberry.type
class PatternMutation:
    @strawberry.mutation(description="Create a learning pattern (admin).")
    @typed_errors(role=Role.ADMIN)
    async def create_learning_pattern(self, info: Info, input: LearningPatternInput) -> PatternResult:
        return LearningPattern.from_doc(await service.create_pattern(
            info.context.backends, data=validate(PatternContent, input), user=info.context.user))

    @strawberry.mutation(description="Change a learning pattern (admin); a validated one keeps a trace.")
    @typed_errors(role=Role.ADMIN)
    async def update_learning_pattern(self, info: Info, id: strawberry.ID,
                                      input: UpdateLearningPatternInput) -> PatternResult:
        return LearningPattern.from_doc(await service.update_pattern(
            info.context.backends, pattern_id=id, data=validate(PatternUpdate, input), user=info.context.user))

    @strawberry.mutation(description="Delete a learning pattern (admin).")
    @typed_errors(role=Role.ADMIN)
    async def delete_learning_pattern(self, info: Info, id: strawberry.ID) -> DeleteResult:
        await service.delete_pattern(info.context.backends, pattern_id=id, user=info.context.user)
        return Deleted(id=id)

    @strawberry.mutation(description="Validate a learning pattern with notes (admin).")
    @typed_errors(role=Role.ADMIN)
    async def validate_learning_pattern(self, info: Info, id: strawberry.ID,
                                        validation_notes: str = "") -> PatternResult:
        return LearningPattern.from_doc(await service.validate(
            info.context.backends, pattern_id=id, user=info.context.user,
            data=validate(ValidateRequest, {"validation_notes": validation_notes})))

    @strawberry.mutation(description="Record that a learning pattern was applied, to an incident if named (editor).")
    @typed_errors(role=Role.EDITOR)
    async def apply_learning_pattern(self, info: Info, id: strawberry.ID,
                                     incident_id: strawberry.ID | None = None) -> PatternResult:
        return LearningPattern.from_doc(await service.apply(
            info.context.backends, pattern_id=id, user=info.context.user,
            data=validate(ApplyRequest, {"incident_id": incident_id})))

    @strawberry.mutation(description="Merge another learning pattern into this one; the other is deleted (admin).")
    @typed_errors(role=Role.ADMIN)
    async def merge_learning_patterns(self, info: Info, id: strawberry.ID, other: strawberry.ID) -> PatternResult:
        return LearningPattern.from_doc(await service.merge(
            info.context.backends, pattern_id=id, user=info.context.user, data=validate(MergeRequest, {"other": other})))


@strawberry.type(description="What a mining run did to one pattern.")
class PatternMiningRunPattern:
    pattern_id: strawberry.ID | None
    action: str = strawberry.field(description="created, updated or unchanged.")
    pattern_type: str
    name: str
    frequency: int
    confidence_score: float


@strawberry.type(description="One learning-pattern mining run, past or current (admins, as far as their clearance "
                             "goes: a run is as secret as the most secret incident it looked at).")
class PatternMiningRun:
    id: strawberry.ID
    status: RunStatusEnum
    trigger: RunTriggerEnum
    days: int
    min_frequency: int
    incidents: int | None = strawberry.field(description="Incidents resolved in the window (once finished).")
    eligible: int | None = strawberry.field(description="Of those, the ones mined: with a cause, not duplicates.")
    duplicates_skipped: int | None = strawberry.field(description="Closed as a duplicate of another: counted once.")
    counts: JSON | None = strawberry.field(description="Patterns created, updated, unchanged.")
    patterns: list[PatternMiningRunPattern]
    started_at: datetime
    claimed_at: datetime | None = strawberry.field(description="When a worker took a requested run.")
    completed_at: datetime | None
    processing_time: float | None
    leased_until: datetime | None = strawberry.field(
        description="A running run not renewed by then is taken as dead and no longer blocks a new one.")
    error_message: str | None
    data_classification: ClassificationEnum
    _requested_by: strawberry.Private[str | None]

    @strawberry.field
    async def requested_by(self, info: Info) -> UserType | None:
        return await _person(info, self._requested_by)

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "PatternMiningRun":
        return cls(id=d["_id"], status=RunStatus(d["status"]), trigger=RunTrigger(d.get("trigger") or "command"),
                   days=d.get("days") or 0, min_frequency=d.get("min_frequency") or 0, incidents=d.get("incidents"),
                   eligible=d.get("eligible"), duplicates_skipped=d.get("duplicates_skipped"),
                   counts=camel_keys(d.get("counts")),
                   patterns=[PatternMiningRunPattern(pattern_id=p.get("pattern_id"), action=p["action"],
                                                     pattern_type=p["pattern_type"], name=p["name"],
                                                     frequency=p["frequency"], confidence_score=p["confidence_score"])
                             for p in (d.get("patterns") or [])[:RUN_PATTERNS_MAX]],
                   started_at=d["started_at"], claimed_at=d.get("claimed_at"), completed_at=d.get("completed_at"),
                   processing_time=d.get("processing_time"), leased_until=d.get("leased_until"),
                   error_message=d.get("error_message"),
                   data_classification=Classification(d.get("data_classification", Classification.INTERNAL.value)),
                   _requested_by=d.get("requested_by"))


@strawberry.type
class PatternMiningQuery:
    @strawberry.field(description="Learning-pattern mining runs, newest first (admin), filtered, ordered "
                                  "(started_at, completed_at) and paginated like the REST list.")
    @permit(Role.ADMIN)
    async def pattern_mining_runs(self, info: Info, status: list[RunStatusEnum] | None = None,
                                  trigger: list[RunTriggerEnum] | None = None, ordering: str | None = None,
                                  page: int = 1, page_size: int = 20) -> Paginated[PatternMiningRun]:
        params = list_params(status=status, trigger=trigger, ordering=ordering, page=page, page_size=page_size)
        return paginated(await run_records.list_runs(info.context.backends, params=params, user=info.context.user),
                         PatternMiningRun.from_doc)

    @strawberry.field(description="One mining run (admin).")
    @permit(Role.ADMIN)
    async def pattern_mining_run(self, info: Info, id: strawberry.ID) -> PatternMiningRun:
        return PatternMiningRun.from_doc(await run_records.get_run(info.context.backends, run_id=id,
                                                                   user=info.context.user))


@strawberry.type
class MiningStarted:
    message: str
    created: bool = strawberry.field(description="False when a run was already running: `run` is that one.")
    run: PatternMiningRun


MiningResult = result("StartPatternMiningResult", MiningStarted, ValidationError, PermissionDeniedError)


@strawberry.type
class PatternMiningMutation:
    @strawberry.mutation(description="Start a mining run on a worker (admin): patterns from the incidents "
                                     "resolved in the last `days` days, groups of at least `minFrequency`. "
                                     "One run at a time: while one is running, that one is returned.")
    @typed_errors(role=Role.ADMIN)
    async def start_pattern_mining(self, info: Info, days: int = 30, min_frequency: int = 3) -> MiningResult:
        request = validate(MiningRequest, {"days": days, "min_frequency": min_frequency})
        doc, created = await runs.request(info.context.backends, days=request.days,
                                          min_frequency=request.min_frequency, user=info.context.user)
        return MiningStarted(message="Learning pattern mining started" if created else
                             "A learning pattern mining run is already running", created=created,
                             run=PatternMiningRun.from_doc(doc))

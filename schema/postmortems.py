"""Postmortems in GraphQL: queries, mutations and types. Resolvers only call app.postmortems.service."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, AsyncGenerator

import strawberry
from strawberry.scalars import JSON

from app.incidents.models import Severity
from app.postmortems import drafting, generations, service
from app.postmortems.models import (ActionItem, ActionItemPriority, ActionItemStatus, ActionItemUpdate, Automation,
                                    GenerationRequest, GenerationStatus, GenerationTrigger, PostmortemCreate,
                                    PostmortemStatus, PostmortemUpdate)
from app.users.models import Classification, Role
from schema.articles import UserType, _person
from schema.common import ClassificationEnum, Paginated, camel_keys, list_params, paginated, validate
from schema.context import Info, by_ids
from schema.inputs import input_type
from schema.errors import result, typed_errors
from schema.incidents import Incident, IncidentByIdLoader, IncidentSeverity

PostmortemStatusEnum = strawberry.enum(PostmortemStatus, name="PostmortemStatus")
ActionItemStatusEnum = strawberry.enum(ActionItemStatus, name="ActionItemStatus")
ActionItemPriorityEnum = strawberry.enum(ActionItemPriority, name="ActionItemPriority")
GenerationStatusEnum = strawberry.enum(GenerationStatus, name="PostmortemGenerationStatus")
GenerationTriggerEnum = strawberry.enum(GenerationTrigger, name="PostmortemGenerationTrigger")


@strawberry.enum(name="ActionItemAutomationKind")
class AutomationKind(Enum):
    WEBHOOK_EVENT = "webhook_event"
    RUNBOOK = "runbook"


@strawberry.type(description="What creating an action item starts: a webhook event a workflow listens to, or a "
                             "runbook URL to run (sent with the item in its webhook deliveries).")
class ActionItemAutomation:
    kind: AutomationKind
    target: str

    @classmethod
    def from_doc(cls, a: dict[str, Any] | None) -> "ActionItemAutomation | None":
        return cls(kind=AutomationKind(a.get("kind")), target=a.get("target") or "") if isinstance(a, dict) else None


ActionItemAutomationInput = input_type(
    Automation, "ActionItemAutomationInput", types={"kind": AutomationKind},
    description="An action item's automation: kind WEBHOOK_EVENT with an event name, or RUNBOOK with an http(s) URL.")


@strawberry.type(description="One tracked action item of a postmortem.")
class PostmortemActionItem:
    id: strawberry.ID
    title: str
    description: str
    priority: ActionItemPriorityEnum
    assignee: str | None
    due_date: datetime | None
    category: str
    status: ActionItemStatusEnum
    automation: ActionItemAutomation | None

    @classmethod
    def from_doc(cls, i: dict[str, Any]) -> "PostmortemActionItem":
        return cls(id=i.get("id") or "", title=i.get("title") or "", description=i.get("description") or "",
                   priority=ActionItemPriority(i.get("priority") or ActionItemPriority.MEDIUM.value),
                   assignee=i.get("assignee"), due_date=i.get("due_date"), category=i.get("category") or "",
                   status=ActionItemStatus(i.get("status") or ActionItemStatus.OPEN.value),
                   automation=ActionItemAutomation.from_doc(i.get("automation")))


PostmortemByIdLoader = by_ids(service.postmortems_by_ids)  # as the caller may see them


@strawberry.type
class Postmortem:
    id: strawberry.ID
    title: str
    incident_id: strawberry.ID
    executive_summary: str
    timeline: JSON
    root_cause_analysis: str
    impact_assessment: str
    lessons_learned: str
    action_items: list["PostmortemActionItem"] = strawberry.field(description="Tracked action items.")
    action_items_version: str = strawberry.field(description=(
        "The version of the action item list (changes with any change of an item): send it back as "
        "`actionItemsVersion` with a whole-list `actionItems` write, applied only while the list is as read."))
    is_automated: bool
    generation_confidence: float | None
    auto_generated_sections: list[str]
    status: PostmortemStatusEnum
    severity: IncidentSeverity
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    due_date: datetime | None
    related_incidents: list[str]
    affected_services: list[str]
    affected_teams: list[str]
    data_classification: ClassificationEnum
    completion_percentage: float
    is_overdue: bool
    knowledge_article_id: strawberry.ID | None = strawberry.field(
        description="The POSTMORTEM_SUMMARY article written when the postmortem was published.")
    knowledge_article_slug: str | None
    _doc: strawberry.Private[dict]

    @strawberry.field
    async def incident(self, info: Info) -> Incident | None:
        doc = await info.context.loader("IncidentByIdLoader", IncidentByIdLoader).load(self._doc["incident"])
        return Incident.from_doc(doc) if doc else None

    @strawberry.field
    async def incident_title(self, info: Info) -> str | None:
        doc = await info.context.loader("IncidentByIdLoader", IncidentByIdLoader).load(self._doc["incident"])
        return doc["title"] if doc else None

    @strawberry.field
    async def owner(self, info: Info) -> UserType | None:
        return await _person(info, self._doc.get("owner"))

    @strawberry.field
    async def approver(self, info: Info) -> UserType | None:
        return await _person(info, self._doc.get("approver"))

    @strawberry.field
    async def reviewers(self, info: Info) -> list[UserType]:
        people = [await _person(info, r) for r in self._doc.get("reviewers") or []]
        return [p for p in people if p is not None]

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "Postmortem":
        return cls(id=d["_id"], title=d["title"], incident_id=d["incident"],
                   executive_summary=d.get("executive_summary", ""), timeline=d.get("timeline") or [],
                   root_cause_analysis=d.get("root_cause_analysis", ""),
                   impact_assessment=d.get("impact_assessment", ""), lessons_learned=d.get("lessons_learned", ""),
                   action_items=[PostmortemActionItem.from_doc(i) for i in d.get("action_items") or []
                                 if isinstance(i, dict)],
                   action_items_version=service.action_items_version(d.get("action_items")),
                   is_automated=bool(d.get("is_automated")),
                   generation_confidence=d.get("generation_confidence"),
                   auto_generated_sections=d.get("auto_generated_sections") or [],
                   status=PostmortemStatus(d["status"]), severity=Severity(d["severity"]),
                   created_at=d["created_at"], updated_at=d["updated_at"], published_at=d.get("published_at"),
                   due_date=d.get("due_date"), related_incidents=d.get("related_incidents") or [],
                   affected_services=d.get("affected_services") or [], affected_teams=d.get("affected_teams") or [],
                   data_classification=Classification(d.get("data_classification", Classification.INTERNAL.value)),
                   completion_percentage=service.completion_percentage(d), is_overdue=service.is_overdue(d),
                   knowledge_article_id=(d.get("knowledge_article") or {}).get("id"),
                   knowledge_article_slug=(d.get("knowledge_article") or {}).get("slug"), _doc=d)


@strawberry.type
class PostmortemStatistics:
    total_postmortems: int
    by_status: JSON = strawberry.field(description="Postmortem count per status (every status, zeros included).")
    by_severity: JSON = strawberry.field(description="Postmortem count per severity (every severity).")
    automated_percentage: float
    overdue_count: int
    avg_completion_time: str | None = strawberry.field(
        description="Mean time from creation to publication, as Python's timedelta text (`5 days, 12:30:00`).")
    overdue_action_items: int = strawberry.field(
        description="Action items past their due date and neither DONE nor WONT_DO.")


@strawberry.type(description="One postmortem generation job and what it produced.")
class PostmortemGeneration:
    id: strawberry.ID
    incident_id: strawberry.ID
    status: GenerationStatusEnum
    generation_trigger: GenerationTriggerEnum
    include_timeline: bool
    include_logs: bool
    force: bool
    postmortem_created: bool | None = strawberry.field(description="Whether this generation created the postmortem.")
    confidence_score: float | None
    processing_time: float | None = strawberry.field(description="Seconds from start to finish of the last attempt.")
    attempts: int
    model_version: str
    error_message: str | None = strawberry.field(description="Why it FAILED (retry with retryPostmortemGeneration).")
    review_reason: str | None = strawberry.field(description="Why it is REVIEW_REQUIRED.")
    generated_sections: list[str]
    kept_sections: list[str] = strawberry.field(description="Sections a person had edited, left as they were.")
    unsupported_facts: list[str] = strawberry.field(
        description="Facts the draft named that the incident data does not hold (the draft was then not written).")
    evidence: JSON = strawberry.field(description="What backed the draft: per-section evidence scores, events used, "
                                                  "similar incidents, log excerpts.")
    data_classification: ClassificationEnum
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    postmortem_id: strawberry.ID | None
    _requested_by: strawberry.Private[str | None]

    @strawberry.field
    async def incident(self, info: Info) -> Incident | None:
        doc = await info.context.loader("IncidentByIdLoader", IncidentByIdLoader).load(self.incident_id)
        return Incident.from_doc(doc) if doc else None

    @strawberry.field
    async def postmortem(self, info: Info) -> Postmortem | None:
        if not self.postmortem_id:
            return None
        doc = await info.context.loader("PostmortemByIdLoader", PostmortemByIdLoader).load(self.postmortem_id)
        return Postmortem.from_doc(doc) if doc else None

    @strawberry.field
    async def requested_by(self, info: Info) -> UserType | None:
        return await _person(info, self._requested_by)

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> "PostmortemGeneration":
        return cls(id=d["_id"], incident_id=d["incident"], status=GenerationStatus(d["status"]),
                   generation_trigger=GenerationTrigger(d["generation_trigger"]),
                   include_timeline=d.get("include_timeline", True), include_logs=d.get("include_logs", True),
                   force=bool(d.get("force")), postmortem_created=d.get("postmortem_created"),
                   confidence_score=d.get("confidence_score"), processing_time=d.get("processing_time"),
                   attempts=d.get("attempts", 0), model_version=d.get("model_version", ""),
                   error_message=d.get("error_message"), review_reason=d.get("review_reason"),
                   generated_sections=d.get("generated_sections") or [], kept_sections=d.get("kept_sections") or [],
                   unsupported_facts=d.get("unsupported_facts") or [], evidence=camel_keys(d.get("evidence") or {}),
                   data_classification=Classification(d.get("data_classification", Classification.INTERNAL.value)),
                   created_at=d["created_at"], started_at=d.get("started_at"), completed_at=d.get("completed_at"),
                   postmortem_id=d.get("postmortem"), _requested_by=d.get("requested_by"))


StartPostmortemGenerationInput = input_type(GenerationRequest, "StartPostmortemGenerationInput", ids=("incident_id",))
ActionItemInput = input_type(ActionItem, "ActionItemInput", ids=("id",), description=(
    "An action item; `id` keeps an existing item's identity, a new one gets an id."))
PEOPLE = ("owner", "reviewers", "approver")  # user ids
CreatePostmortemInput = input_type(PostmortemCreate, "CreatePostmortemInput", ids=("incident", *PEOPLE))
UpdatePostmortemInput = input_type(PostmortemUpdate, "UpdatePostmortemInput", partial=True, ids=PEOPLE)
UpdateActionItemInput = input_type(ActionItemUpdate, "UpdateActionItemInput", partial=True)


PostmortemResult = result("PostmortemResult", Postmortem)
PostmortemGenerationResult = result("PostmortemGenerationResult", PostmortemGeneration)


def _postmortem_page(*, overdue: bool):
    """A resolver of a page of the postmortems the caller may see (only the overdue ones with `overdue`), with
    the REST list's filters, `search`, ordering and paging."""
    async def resolver(info: Info, status: list[PostmortemStatusEnum] | None = None,
                       severity: list[IncidentSeverity] | None = None, is_automated: bool | None = None,
                       owner: str | None = None, incident: strawberry.ID | None = None, search: str | None = None,
                       ordering: str | None = None, page: int = 1, page_size: int = 20) -> Paginated[Postmortem]:
        params = list_params(status=status, severity=severity, is_automated=is_automated, owner=owner, incident=incident,
                             search=search, ordering=ordering, page=page, page_size=page_size)
        return paginated(await service.list_postmortems(info.context.backends, params=params, user=info.context.user,
                                                        overdue=overdue), Postmortem.from_doc)

    return resolver


@strawberry.type
class PostmortemQuery:
    postmortems: Paginated[Postmortem] = strawberry.field(
        resolver=_postmortem_page(overdue=False),
        description="Postmortems, filtered, searched, ordered and paginated like the REST list.")
    overdue_postmortems: Paginated[Postmortem] = strawberry.field(
        resolver=_postmortem_page(overdue=True),
        description="Postmortems past their due date and not yet published or archived.")

    @strawberry.field
    async def postmortem(self, info: Info, id: strawberry.ID) -> Postmortem:
        return Postmortem.from_doc(await service.view_postmortem(info.context.backends, pm_id=id,
                                                                 user=info.context.user))

    @strawberry.field
    async def postmortem_statistics(self, info: Info) -> PostmortemStatistics:
        return PostmortemStatistics(**await service.statistics(info.context.backends, user=info.context.user))

    @strawberry.field(description="Postmortem generation jobs, filtered, ordered and paginated like the REST list.")
    async def postmortem_generations(self, info: Info, status: list[GenerationStatusEnum] | None = None,
                                     incident: strawberry.ID | None = None,
                                     generation_trigger: list[GenerationTriggerEnum] | None = None,
                                     ordering: str | None = None, page: int = 1,
                                     page_size: int = 20) -> Paginated[PostmortemGeneration]:
        params = list_params(status=status, incident=incident, generation_trigger=generation_trigger, ordering=ordering,
                         page=page, page_size=page_size)
        return paginated(await generations.list_generations(info.context.backends, params=params,
                                                            user=info.context.user), PostmortemGeneration.from_doc)

    @strawberry.field
    async def postmortem_generation(self, info: Info, id: strawberry.ID) -> PostmortemGeneration:
        return PostmortemGeneration.from_doc(await generations.get_generation(info.context.backends, gen_id=id,
                                                                              user=info.context.user))


async def _move(info: Info, id: str, action: str) -> Postmortem:
    return Postmortem.from_doc(await service.transition(info.context.backends, pm_id=id, action=action,
                                                        user=info.context.user))


@strawberry.type
class PostmortemMutation:
    @strawberry.mutation
    @typed_errors(role=Role.EDITOR)
    async def create_postmortem(self, info: Info, input: CreatePostmortemInput) -> PostmortemResult:
        user = info.context.user
        return Postmortem.from_doc(await service.create_postmortem(
            info.context.backends, data=validate(PostmortemCreate, input), user=user))

    @strawberry.mutation
    @typed_errors(role=service.UPDATE_RULE)
    async def update_postmortem(self, info: Info, id: strawberry.ID, input: UpdatePostmortemInput) -> PostmortemResult:
        user = info.context.user
        return Postmortem.from_doc(await service.update_postmortem(
            info.context.backends, pm_id=id, data=validate(PostmortemUpdate, input), user=user))

    @strawberry.mutation(description="Change one action item of a postmortem (editor).")
    @typed_errors(role=Role.EDITOR)
    async def update_postmortem_action_item(self, info: Info, id: strawberry.ID, item_id: strawberry.ID,
                                            input: UpdateActionItemInput) -> PostmortemResult:
        user = info.context.user
        return Postmortem.from_doc(await service.update_action_item(
            info.context.backends, pm_id=id, item_id=item_id, data=validate(ActionItemUpdate, input), user=user))

    @strawberry.mutation
    @typed_errors(role=service.MOVE_RULES["submit_for_review"])
    async def submit_postmortem_for_review(self, info: Info, id: strawberry.ID) -> PostmortemResult:
        return await _move(info, id, "submit_for_review")

    @strawberry.mutation
    @typed_errors(role=service.MOVE_RULES["request_changes"])
    async def request_postmortem_changes(self, info: Info, id: strawberry.ID) -> PostmortemResult:
        return await _move(info, id, "request_changes")

    @strawberry.mutation
    @typed_errors(role=service.MOVE_RULES["approve"])
    async def approve_postmortem(self, info: Info, id: strawberry.ID) -> PostmortemResult:
        return await _move(info, id, "approve")

    @strawberry.mutation
    @typed_errors(role=service.MOVE_RULES["publish"])
    async def publish_postmortem(self, info: Info, id: strawberry.ID) -> PostmortemResult:
        return await _move(info, id, "publish")

    @strawberry.mutation
    @typed_errors(role=service.MOVE_RULES["archive"])
    async def archive_postmortem(self, info: Info, id: strawberry.ID) -> PostmortemResult:
        return await _move(info, id, "archive")

    @strawberry.mutation(description=(
        "Draft the postmortem's sections from its incident's data (editor). Sections a person edited are kept "
        "unless `force`; a draft naming facts the data does not hold is refused (UNSUPPORTED_FACTS)."))
    @typed_errors(role=Role.EDITOR)
    async def generate_postmortem_draft(self, info: Info, id: strawberry.ID, force: bool = False) -> PostmortemResult:
        user = info.context.user
        return Postmortem.from_doc(await drafting.generate_automated(info.context.backends, pm_id=id, user=user,
                                                                     force=force))

    @strawberry.mutation(description=(
        "Start a postmortem generation job for an incident (editor); a worker drafts it. The incident's running "
        "generation is returned when there is one. Follow it with postmortemGenerationUpdates."))
    @typed_errors(role=Role.EDITOR)
    async def start_postmortem_generation(self, info: Info,
                                          input: StartPostmortemGenerationInput) -> PostmortemGenerationResult:
        user = info.context.user
        doc, _ = await generations.start(info.context.backends, data=validate(GenerationRequest, input), user=user)
        return PostmortemGeneration.from_doc(doc)

    @strawberry.mutation(description="Run a FAILED generation again (editor).")
    @typed_errors(role=Role.EDITOR)
    async def retry_postmortem_generation(self, info: Info, id: strawberry.ID) -> PostmortemGenerationResult:
        user = info.context.user
        return PostmortemGeneration.from_doc(await generations.retry(info.context.backends, gen_id=id, user=user))


@strawberry.type
class PostmortemSubscription:
    @strawberry.subscription(description=(
        "A generation now and after every change of it, until it is COMPLETED, FAILED or REVIEW_REQUIRED."))
    async def postmortem_generation_updates(self, info: Info,
                                            id: strawberry.ID) -> AsyncGenerator[PostmortemGeneration, None]:
        bk, user = info.context.backends, info.context.user
        await generations.get_generation(bk, gen_id=id, user=user)  # NOT_FOUND before anything streams

        async def public(doc: dict) -> PostmortemGeneration:
            return PostmortemGeneration.from_doc(doc)

        async for item in generations.follow(bk, gen_id=id, user=user, public=public):
            if item is not None:
                yield item

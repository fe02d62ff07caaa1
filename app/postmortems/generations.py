"""Postmortem generation jobs: a log per request, run by a worker, followed live.

`start` records a PENDING log (one active generation per incident: a second request while one is
PENDING or PROCESSING gets the same log back) and asks a worker to `run` it. `run` leases the log
(PROCESSING, `leased_until`), drafts the incident's postmortem through `drafting.redraft` — creating
the postmortem when the incident has none, so retries and duplicates leave one postmortem per incident
— and finishes it COMPLETED, REVIEW_REQUIRED (confidence under `postmortem_review_threshold`, or a draft
that failed the fact check: nothing written, the draft kept in the log for a reviewer) or FAILED (the
reason kept; `retry` starts it again). A worker killed mid-job leaves an expired lease: the worker's
sweep (`sweep`) runs such logs again, and PENDING ones whose message was lost, so none stays PROCESSING;
after `postmortem_generation_max_attempts` claims a log is FAILED. Every status change is announced
(app/live.py) for the SSE route and the GraphQL subscription.

"The incident's postmortem" is always the one its requester may see, then and when it runs (the latest
of those at or below their clearance at that moment): a postmortem above them is never written nor named,
and the incident is answered as having none — their generation creates one they may see, as they could
by hand. Nothing is ever written above the requester's clearance.

A run writes only while it holds its lease: a heartbeat renews the lease (every third of it) while the
run goes on, and every write the run makes (creating the postmortem, writing the draft, each with its
audit entry) renews it inside the same MongoDB transaction, which aborts when the lease has run out or
was taken over (`LeaseLost`). A run paused past its lease so writes nothing and ends quietly; the run
that took it over started from whatever the paused one had written before, and the log records a
postmortem the generation created, whichever run created it.

Resolving an incident of a severity in `postmortem_auto_severities` records a generation in the same
transaction as the resolution (`on_incident_resolved`, trigger `incident_resolved`, at most once per
incident), run on behalf of the `postmortem-bot` user.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from typing import Any, Mapping

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from app import classification, leases, live, periodic
from app.activity.service import record_audit
from app.backends import Backends
from app.errors import Conflict, NotFound, ServiceError, ValidationFailed
from app.incidents import hooks, service as incidents
from app.incidents.hooks import Happened
from app.listing import Filter, ListSpec, Page
from app.repository import Repository
from app.postmortems import drafting, service
from app.postmortems.models import (FINISHED_GENERATION_STATUSES, GenerationRequest, GenerationStatus,
                                    GenerationTrigger, PostmortemCreate)
from app.timefmt import utcnow
from app.users import service as users
from app.users.models import Role, User, require_role

log = logging.getLogger(__name__)
G = GenerationStatus
TOPIC = "postmortem-generation"
BOT_USERNAME = users.Bot.POSTMORTEMS.value
MODEL_VERSION = "rules-1"
TITLE_MAX = 200
SUBJECT = "postmortem_generation"  # its audit entries' subject_type
ACTIVE = (G.PENDING.value, G.PROCESSING.value)

LIST_SPEC = ListSpec(
    collection="postmortem_generations",
    filters=(Filter("status", "status", GenerationStatus),
             Filter("incident", "incident", description="The incident: its name or its id", indexed=True),
             Filter("generation_trigger", "generation_trigger", GenerationTrigger)),
    ordering={"started_at": "started_at", "completed_at": "completed_at", "processing_time": "processing_time",
              "created_at": "created_at"},
    default_ordering=("-created_at",),
)


GENERATIONS = Repository("Postmortem generation", "GENERATION_NOT_FOUND", LIST_SPEC)


async def bot_user(bk: Backends) -> User:
    """The user automatic generations run as: an admin who sees everything (what it writes keeps the
    classification of its incident, and its sources are held to it; see drafting)."""
    return await users.bot(bk, users.Bot.POSTMORTEMS)


# --- reading --------------------------------------------------------------------------------------

async def get_generation(bk: Backends, *, gen_id: str, user: User) -> dict:
    return await GENERATIONS.get(bk, gen_id, user)


async def list_generations(bk: Backends, *, params: Mapping[str, Any], user: User) -> Page:
    """`?incident=` takes the incident's name or id, as every list does."""
    return await GENERATIONS.page(bk, await incidents.incident_filter_param(bk, params, user=user), user)


def finished(doc: Mapping[str, Any]) -> bool:
    return doc.get("status") in FINISHED_GENERATION_STATUSES


def follow(bk: Backends, *, gen_id: str, user: User, public):
    """Live updates of one generation as `public(doc)` (see app/live.py); the caller checks it exists first."""
    async def read():
        return await GENERATIONS.find(bk, gen_id, user)

    return live.follow(bk, topic=TOPIC, doc_id=gen_id, user_id=user.id, read=read, public=public, finished=finished)


# --- starting -------------------------------------------------------------------------------------

def _new_log(incident: Mapping[str, Any], *, trigger: str, user: User, include_timeline: bool = True,
             include_logs: bool = True, force: bool = False) -> dict[str, Any]:
    now = utcnow()
    return {"_id": str(uuid.uuid4()), "incident": incident["_id"], "status": G.PENDING.value, "active": True,
            "data_classification": incident.get(classification.FIELD, classification.DEFAULT.value),
            "generation_trigger": trigger, "include_timeline": include_timeline, "include_logs": include_logs,
            "force": force, "requested_by": user.id, "created_at": now, "updated_at": now, "started_at": None,
            "completed_at": None, "processing_time": None, "attempts": 0, "postmortem": None,
            "model_version": MODEL_VERSION}


async def dispatch(bk: Backends, gen_id: str) -> None:
    """Ask a worker to run the generation now; a broker that is down leaves it to the sweep."""
    await bk.enqueue("run_postmortem_generation", gen_id)


async def create(bk: Backends, *, incident: Mapping[str, Any], user: User, trigger: str, include_timeline: bool = True,
                 include_logs: bool = True, force: bool = False) -> tuple[dict, bool]:
    """Record a PENDING generation (not dispatched), or return the incident's active one: (log, created)."""
    doc = _new_log(incident, trigger=trigger, user=user, include_timeline=include_timeline,
                   include_logs=include_logs, force=force)
    for _ in range(3):
        try:
            await bk.mongo.postmortem_generations.insert_one(doc)
            await record_audit(bk, action="create", user=user, subject_type=SUBJECT, subject_id=doc["_id"],
                               changes={"incident": incident["_id"], "trigger": trigger, "force": force})
            await live.announce(bk, TOPIC, doc["_id"])
            return doc, True
        except DuplicateKeyError:  # one active generation per incident
            active = await bk.mongo.postmortem_generations.find_one({"incident": incident["_id"], "active": True})
            if active is not None:
                return active, False
    raise Conflict("Could not start a generation for this incident; try again", code="GENERATION_BUSY")


async def start(bk: Backends, *, data: GenerationRequest, user: User) -> tuple[dict, bool]:
    """`generate_postmortem/` (editor): a PENDING generation for an incident the user may see, dispatched
    to a worker; the incident's active generation when there is one. Returns (log, created)."""
    require_role(user, Role.EDITOR)
    if data.generation_trigger == GenerationTrigger.INCIDENT_RESOLVED:
        raise ValidationFailed("The incident_resolved trigger is set by the service when an incident is resolved",
                               {"field": "generation_trigger"})
    incident = await incidents.referenced_incident(bk, incident_id=data.incident_id, user=user, field="incident_id")
    existing = await _postmortem_for(bk, incident["_id"], user=user)  # one the user may see, so it may be named
    if existing is not None:
        if existing["status"] in service.CLOSED_STATUSES:
            raise Conflict(f"The incident's postmortem is {existing['status']} and is not drafted again",
                           {"postmortem": existing["_id"], "status": existing["status"]}, code="POSTMORTEM_CLOSED")
        drafting.check_not_below_incident(existing, incident)
    doc, created = await create(bk, incident=incident, user=user, trigger=data.generation_trigger.value,
                                include_timeline=data.include_timeline, include_logs=data.include_logs,
                                force=data.force)
    if created:
        await dispatch(bk, doc["_id"])
    return doc, created


async def on_incident_resolved(bk: Backends, incident: Mapping[str, Any], *, bot: User, session) -> str | None:
    """Called inside the transaction that resolves `incident`: record its automatic generation when its
    severity is configured and it never had one. Returns the new log's id (dispatch it after commit)."""
    if incident.get("severity") not in bk.settings.postmortem_auto_severities:
        return None
    # one already running (started by hand) drafts it: recording another would break the unique index
    # on active generations, and with it the resolution's transaction
    if await bk.mongo.postmortem_generations.find_one({"incident": incident["_id"], "active": True}, {"_id": 1},
                                                      session=session):
        return None
    doc = {**_new_log(incident, trigger=GenerationTrigger.INCIDENT_RESOLVED.value, user=bot),
           "dedupe_key": f"incident_resolved:{incident['_id']}"}
    result = await bk.mongo.postmortem_generations.update_one(
        {"dedupe_key": doc["dedupe_key"]}, {"$setOnInsert": doc}, upsert=True, session=session)
    if result.upserted_id is None:
        return None
    await record_audit(bk, action="create", user=bot, subject_type=SUBJECT, subject_id=doc["_id"], session=session,
                       changes={"incident": incident["_id"], "trigger": doc["generation_trigger"]})
    return doc["_id"]


async def _bot_if_automatic(bk: Backends, incident: Mapping[str, Any]) -> User | None:
    """Before an incident is resolved: the bot, when its severity calls for an automatic generation."""
    return await bot_user(bk) if incident.get("severity") in bk.settings.postmortem_auto_severities else None


async def _record_if_automatic(bk: Backends, incident: Mapping[str, Any], bot: User | None, session) -> str | None:
    return None if bot is None else await on_incident_resolved(bk, incident, bot=bot, session=session)


# resolving an incident of a configured severity records its automatic generation in the resolving
# transaction, dispatched once that commits
hooks.subscribe(Happened.RESOLVED, prepare=_bot_if_automatic, within=_record_if_automatic, after_commit=dispatch)


async def retry(bk: Backends, *, gen_id: str, user: User) -> dict:
    """Run a FAILED generation again (editor): PENDING, attempts reset, the earlier error kept in `errors`."""
    require_role(user, Role.EDITOR)
    current = await get_generation(bk, gen_id=gen_id, user=user)
    if current["status"] != G.FAILED.value:
        raise Conflict(f"Only a FAILED generation is retried; this one is {current['status']}",
                       {"status": current["status"]}, code="INVALID_TRANSITION")
    try:
        doc = await bk.mongo.postmortem_generations.find_one_and_update(
            {"_id": gen_id, "status": G.FAILED.value},
            {"$set": {"status": G.PENDING.value, "active": True, "attempts": 0, "updated_at": utcnow(),
                      "retried_by": user.id},
             "$push": {"errors": {"error": current.get("error_message"), "at": current.get("completed_at")}},
             "$unset": {"error_message": "", "leased_until": "", "lease": ""}},
            return_document=ReturnDocument.AFTER)
    except DuplicateKeyError:
        raise Conflict("Another generation for this incident is running", code="GENERATION_BUSY") from None
    if doc is None:
        raise Conflict("The generation changed meanwhile; reload it", code="CONCURRENT_UPDATE")
    await record_audit(bk, action="retry", user=user, subject_type=SUBJECT, subject_id=gen_id,
                       changes={"error": current.get("error_message")})
    await live.announce(bk, TOPIC, gen_id)
    await dispatch(bk, gen_id)
    return doc


# --- running --------------------------------------------------------------------------------------

async def _postmortem_for(bk: Backends, incident_id: str, *, user: User) -> dict | None:
    """The incident's postmortem as `user` sees it: the latest they may see, should several have been
    created by hand (one above their clearance is, to them, not there)."""
    return await bk.mongo.postmortems.find_one({"incident": incident_id, **classification.mongo_filter(user)},
                                               sort=[("created_at", -1)])


async def ensure_postmortem(bk: Backends, *, incident: Mapping[str, Any], user: User,
                            claimed: Mapping[str, Any] | None = None) -> tuple[dict, bool]:
    """The incident's postmortem as `user` sees it, created as a DRAFT "Postmortem: <title>" owned by
    `user` when they see none (severity and classification from the incident). With `claimed` (a run's
    lease), created only while the lease holds, and recorded on the log in the same transaction.
    Returns (postmortem, created)."""
    existing = await _postmortem_for(bk, incident["_id"], user=user)
    if existing is not None:
        return existing, False
    writer = bk
    if claimed is not None:
        async def record(s) -> None:  # the postmortem just inserted in this transaction is this generation's
            made = await bk.mongo.postmortems.find_one({"incident": incident["_id"], "created_by": user.id},
                                                       {"_id": 1}, sort=[("created_at", -1)], session=s)
            await bk.mongo.postmortem_generations.update_one(
                {"_id": claimed["_id"], "lease": claimed["lease"]},
                {"$set": {"created_postmortem": made["_id"] if made else None}}, session=s)
        writer = _fenced(bk, claimed, then=record)
    doc = await service.create_postmortem(writer, user=user, data=PostmortemCreate(
        incident=incident["_id"], title=f"Postmortem: {incident.get('title') or incident.get('name')}"[:TITLE_MAX],
        owner=user.id, severity=incident.get("severity"),
        data_classification=incident.get(classification.FIELD)))
    return doc, True


# the generation logs as leased jobs (app/leases.py): `active` while PENDING or PROCESSING
JOBS = leases.Jobs("postmortem_generations", running=G.PROCESSING.value,
                   lease_seconds=lambda settings: settings.postmortem_generation_lease_seconds, what="generation")
LeaseLost = leases.LeaseLost


def _fenced(bk: Backends, claimed: Mapping[str, Any], *, then=None) -> Backends:
    """`bk` for the writes of the run holding `claimed`'s lease (app/leases.py `Jobs.fenced`)."""
    return JOBS.fenced(bk, claimed, then=then)


async def _claim(bk: Backends, gen_id: str) -> dict | None:
    """Lease a PENDING generation, or a PROCESSING one whose lease expired (its worker died)."""
    return await JOBS.claim(bk, {"_id": gen_id, "$or": [{"status": G.PENDING.value},
                                                         {"status": G.PROCESSING.value, "leased_until": {"$lte": utcnow()}}]},
                            started_at=utcnow(), inc={"attempts": 1})


async def _finish(bk: Backends, claimed: dict, status: GenerationStatus, **fields: Any) -> dict | None:
    """Write the outcome, only while this run still holds the lease."""
    doc = await JOBS.finish(bk, claimed, status.value, since=claimed["started_at"], **fields)
    if doc is not None:
        await live.announce(bk, TOPIC, claimed["_id"])
    return doc


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ServiceError):
        return exc.summary()
    return f"{type(exc).__name__}: {exc}"[:1000]


async def run(bk: Backends, gen_id: str) -> dict | None:
    """Run one generation if it can be claimed (else None: finished, or held by another worker)."""
    claimed = await _claim(bk, gen_id)
    if claimed is None:
        return None
    await live.announce(bk, TOPIC, gen_id)
    if claimed["attempts"] > bk.settings.postmortem_generation_max_attempts:
        return await _finish(bk, claimed, G.FAILED, error_message=(
            f"Gave up after {claimed['attempts'] - 1} attempts; last error: {claimed.get('last_error') or 'none recorded'}"))
    began = time.perf_counter()
    try:
        async with JOBS.heartbeat(bk, claimed):
            outcome = await _generate(bk, claimed)
    except LeaseLost:  # paused past the lease, or taken over: it wrote nothing; whoever holds it finishes
        log.warning("generation lease lost; nothing written", extra={"generation": gen_id})
        return None
    except PyMongoError as exc:  # the database is out of reach: the lease expires and the sweep retries
        log.warning("generation interrupted; will retry", extra={"generation": gen_id, "error": str(exc)[:300]})
        try:
            await bk.mongo.postmortem_generations.update_one(
                {"_id": gen_id, "lease": claimed["lease"]}, {"$set": {"last_error": _error_text(exc)}})
        except PyMongoError:
            pass
        return None
    except Exception as exc:  # noqa: BLE001 - kept in the log; `retry` runs it again
        if not isinstance(exc, ServiceError):
            log.exception("generation failed", extra={"generation": gen_id})
        return await _finish(bk, claimed, G.FAILED, error_message=_error_text(exc))
    outcome["evidence"]["generation_ms"] = round((time.perf_counter() - began) * 1000, 2)
    status = outcome.pop("status")
    return await _finish(bk, claimed, status, **outcome)


async def _generate(bk: Backends, claimed: dict) -> dict[str, Any]:
    """Draft the incident's postmortem; the outcome fields of the log (with its status)."""
    requester = (await users.users_by_ids(bk, ids=[claimed["requested_by"]])).get(claimed["requested_by"])
    if requester is None or not requester.is_active:
        raise ValidationFailed("The user who requested this generation no longer exists or is inactive",
                               code="REQUESTER_GONE")
    try:
        incident = await incidents.get_incident(bk, incident_id=claimed["incident"], user=requester)
    except NotFound:
        raise NotFound(f"Incident '{claimed['incident']}' not found", code="INCIDENT_NOT_FOUND") from None
    pm, created = await ensure_postmortem(bk, incident=incident, user=requester, claimed=claimed)
    # created by an earlier run of this generation (paused or killed after creating it): created all the same
    created = created or claimed.get("created_postmortem") == pm["_id"]
    evidence: dict[str, Any] = {"timeline_events": len(incident.get("timeline") or []),
                                "log_excerpts": sum(1 for e in incident.get("timeline") or []
                                                    if any(k in (e.get("details") or {}) for k in drafting.LOG_KEYS)),
                                "root_cause_known": bool(incident.get("root_cause"))}
    # the log names the postmortem and what it was drafted from: it is as secret as the more secret of the two
    base = {"postmortem": pm["_id"], "postmortem_created": created,
            "data_classification": classification.most_secret([incident, pm])}
    try:
        done = await drafting.redraft(_fenced(bk, claimed), current=pm, incident=incident, user=requester,
                                      force=claimed["force"], include_timeline=claimed["include_timeline"],
                                      include_logs=claimed["include_logs"], action="generation",
                                      audit_extra={"generation": claimed["_id"]})
    except drafting.UnsupportedFacts as exc:
        d = exc.draft
        return {**base, "status": G.REVIEW_REQUIRED, "confidence_score": d.generation_confidence,
                "generated_sections": [], "kept_sections": [], "draft": d.sections(),
                "unsupported_facts": exc.details["unsupported_facts"],
                "evidence": {**evidence, "sections": d.evidence},
                "review_reason": "The draft names facts the incident data does not hold; it was not written"}
    confidence = done.draft.generation_confidence
    low = confidence < bk.settings.postmortem_review_threshold
    if done.polish.polished:
        base["model_version"] = f"{MODEL_VERSION}+{done.polish.model}"[:50]
    evidence["polish"] = {"polished": done.polish.polished, "rejected": done.polish.rejected,
                          "error": done.polish.error}
    return {**base, "status": G.REVIEW_REQUIRED if low else G.COMPLETED, "confidence_score": confidence,
            "generated_sections": done.written, "kept_sections": done.kept, "unsupported_facts": [],
            "evidence": {**evidence, "sections": done.draft.evidence, "similar_incidents": done.similar,
                         "articles": done.articles, "similar_postmortems": done.similar_postmortems},
            "review_reason": (f"Confidence {confidence:.2f} is below the review threshold "
                              f"{bk.settings.postmortem_review_threshold:.2f}") if low else None}


@periodic.every(periodic.maintenance_interval, name="postmortem generation sweep")
async def sweep(bk: Backends, *, limit: int = 100) -> int:
    """Run generations whose message was lost (PENDING for `postmortem_generation_requeue_seconds`) or
    whose worker died (lease expired). Returns how many were run."""
    now = utcnow()
    stale = now - timedelta(seconds=bk.settings.postmortem_generation_requeue_seconds)
    cursor = bk.mongo.postmortem_generations.find(
        {"$or": [{"status": G.PENDING.value, "updated_at": {"$lte": stale}},
                 {"status": G.PROCESSING.value, "leased_until": {"$lte": now}}]}, {"_id": 1}).limit(limit)
    ran = 0
    for doc in await cursor.to_list(None):
        if await run(bk, doc["_id"]) is not None:
            ran += 1
    return ran

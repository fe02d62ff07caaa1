"""What the demo's people did, written through the services as those people (each part only while its
collection is empty), in this order: postmortems (app/demo/work.py) drafted by the real generation jobs or
written by hand and moved through review by their owner and approver; learning patterns mined from the
incidents and those postmortems by the real mining run, some validated by `demo-lead`; recommendations for
the incidents of the last weeks, then (once the guides were revised with them) for those in flight, generated
by the recommendation service for their responder, who rates them (and applies the best one once the
incident is mitigated). Needs the search index to hold the incidents and articles: the outbox is flushed
first."""

from __future__ import annotations

import logging
import math
import re
from datetime import date
from typing import Any, Awaitable, Callable

from app import embeddings
from app.articles import service as articles
from app.articles.models import ArticleCreate, ArticleUpdate
from app.backends import Backends
from app.demo import work, writing
from app.demo.spec import IMPORTER, Article, DemoData, PostmortemPlan
from app.indexing import outbox
from app.patterns import runs
from app.patterns import service as patterns
from app.patterns.models import ApplyRequest, ValidateRequest
from app.patterns.run_records import RunTrigger
from app.postmortems import generations
from app.postmortems import service as postmortems
from app.postmortems.models import GenerationTrigger, PostmortemCreate, PostmortemUpdate
from app.recommendations import calibration
from app.recommendations import service as recommendations
from app.recommendations.models import GenerateRequest, RateRequest
from app.users import service as users
from app.users.models import User

log = logging.getLogger(__name__)
# the workflow moves from DRAFT to each status (the approver approves, the owner makes the others)
MOVES = {"DRAFT": [], "IN_REVIEW": ["submit_for_review"], "APPROVED": ["submit_for_review", "approve"],
         "PUBLISHED": ["submit_for_review", "approve", "publish"],
         "ARCHIVED": ["submit_for_review", "approve", "publish", "archive"]}
VALIDATED_SHARE = 0.5   # of the mined patterns with actions, the most confident half is validated
IN_FLIGHT = ("OPEN", "INVESTIGATING", "MITIGATED")
RATED = ("INVESTIGATING", "MITIGATED")   # responders rate what they were offered once they work on it
APPLIED = ("MITIGATED", "RESOLVED")   # and apply the best helpful one once it worked
HELPFUL = 4
INCIDENT_NAME = re.compile(r"INC-\d{8}-\d{3}")


async def prepare(bk: Backends) -> None:
    """The search index holds every incident and article, and the incidents have their vectors (what a
    worker does after each write; here, at once)."""
    await outbox.flush(bk, timeout=120)
    if embeddings.available():  # else similarity ranks without meaning, as the service does
        try:
            await outbox.flush(bk, index="embeddings", jobs=True, timeout=120)
        except TimeoutError as exc:  # the workers' sweep finishes them; similarity embeds what it needs
            log.warning("demo incidents not all embedded before seeding: %s", exc)
    for name in ("incidents", "articles"):
        await bk.search.indices.refresh(index=bk.index_alias(name))


async def _step(name: str, fn: Callable[[], Awaitable[int]]) -> int:
    """One part of the seeding; a failure is logged and leaves that part to the next start."""
    try:
        return await fn()
    except Exception as exc:  # noqa: BLE001 - the demo starts without it; its collection stays empty
        log.warning("demo %s not seeded: %s", name, exc, exc_info=True)
        return 0


async def seed_activity(bk: Backends, *, data: DemoData, people: dict[str, User]) -> dict[str, int]:
    """Postmortems, patterns and recommendations (each only while its collection is empty): how many of
    each were created. `people`: the demo users by username."""
    await users.service_account(bk, username=IMPORTER.username)  # the importer is no person to consult
    ids = {d["name"]: d["_id"] async for d in bk.mongo.incidents.find({}, {"name": 1})}
    counts = {"learning_patterns": 0, "postmortems": 0, "recommendations": 0}
    if not (await bk.mongo.learning_patterns.estimated_document_count() == 0
            or await bk.mongo.postmortems.estimated_document_count() == 0
            or await bk.mongo.recommendations.estimated_document_count() == 0):
        return counts
    try:
        await prepare(bk)
    except Exception as exc:  # noqa: BLE001 - no search server: nothing more now, all of it on the next start
        log.warning("demo people's work not seeded (the search index is not ready): %s", exc)
        return counts
    # postmortems first: the mining reads the reviewed ones (what their action items say was done)
    if await bk.mongo.postmortems.estimated_document_count() == 0:
        counts["postmortems"] = await _step("postmortems", lambda: seed_postmortems(bk, data, people, ids))
    if await bk.mongo.learning_patterns.estimated_document_count() == 0:
        counts["learning_patterns"] = await _step("learning patterns", lambda: seed_patterns(bk, data, people, ids))
    if await bk.mongo.recommendations.estimated_document_count() == 0:
        counts["recommendations"] = await _step("recommendations", lambda: seed_recommendations(bk, data, people, ids))
    return counts


# --- learning patterns --------------------------------------------------------------------------------

async def seed_patterns(bk: Backends, data: DemoData, people: dict[str, User], ids: dict[str, str]) -> int:
    """The workers' scheduled mining run (the settings' days and minimum frequency), made here as the
    schedule's first (so the workers' next one is an interval away, not at once while someone tries the
    documented command); then `demo-lead` validates the most confident half of the patterns that carry
    actions, and each incident's responder applies a validated pattern to the incidents in flight of the
    same cause."""
    scheduled = await runs.due(bk)
    report = await runs.run(bk, days=bk.settings.pattern_mining_days,
                            min_frequency=bk.settings.pattern_mining_min_frequency,
                            trigger=(RunTrigger.SCHEDULE if scheduled else RunTrigger.COMMAND).value)
    mined = await bk.mongo.learning_patterns.find({"origin": "mined"}).to_list(None)
    names = {v: k for k, v in ids.items()}
    offered = sorted((p for p in mined if p.get("actions")), key=lambda p: (-p["confidence_score"], p["name"]))
    lead = people["demo-lead"]
    k = min(math.ceil(len(offered) * VALIDATED_SHARE), len(mined) - 1)  # one at least is left to validate
    for p in offered[:k]:
        sources = sorted(names[i] for i in p.get("source_incidents") or [] if i in names)
        await patterns.validate(bk, pattern_id=p["_id"], user=lead, data=ValidateRequest(validation_notes=(
            f"Checked against its {len(sources)} incidents ({', '.join(sources)}): one cause, and the "
            f"actions are what restored service in them.")))
        causes = {data.causes.get(n) for n in sources}
        for inc in data.incidents:
            if inc.status.value in RATED and data.causes.get(inc.name) in causes:
                await patterns.apply(bk, pattern_id=p["_id"], user=people[data.responders[inc.name]],
                                     data=ApplyRequest(incident_id=ids[inc.name]))
    return sum(1 for r in report.rows if r.pattern_id)


# --- postmortems --------------------------------------------------------------------------------------

async def seed_postmortems(bk: Backends, data: DemoData, people: dict[str, User], ids: dict[str, str]) -> int:
    bot = await generations.bot_user(bk)
    people = {**people, bot.username: bot}
    titles = {i.name: i.title for i in data.incidents}
    done = 0
    for plan in data.postmortems:
        if plan.incident in ids and await _postmortem(bk, plan, people, incident_id=ids[plan.incident],
                                                      title=titles[plan.incident]):
            done += 1
    return done


async def _postmortem(bk: Backends, plan: PostmortemPlan, people: dict[str, User], *, incident_id: str,
                      title: str) -> dict | None:
    """One planned postmortem. The people's own (not the command's drafts) are due as if drafted when
    their incident was resolved (the service's rule then: the severity's days after resolution), so those
    still open past that day are overdue; the command's drafts get the rule for a postmortem created now."""
    owner = people[plan.owner]
    cast = {"approver": people[plan.approver].id if plan.approver else None,
            "reviewers": [people[u].id for u in plan.reviewers]}
    incident = await bk.mongo.incidents.find_one({"_id": incident_id})
    if plan.trigger != "command" and incident.get("resolved_at"):
        cast["due_date"] = postmortems.default_due_date(bk, severity=incident["severity"], incident=incident,
                                                        now=incident["resolved_at"])
    if plan.generated_by:
        gen, _ = await generations.create(bk, incident=incident, user=people[plan.generated_by],
                                          trigger=GenerationTrigger(plan.trigger).value)
        await generations.run(bk, gen["_id"])
        pm = await bk.mongo.postmortems.find_one({"incident": incident_id}, sort=[("created_at", -1)])
        if pm is None:  # the generation failed before it created the postmortem (its log says why)
            return None
        if plan.approver or "due_date" in cast:
            pm = await postmortems.update_postmortem(bk, pm_id=pm["_id"], user=owner,
                                                     data=PostmortemUpdate.model_validate(cast))
    else:
        pm = await postmortems.create_postmortem(bk, user=owner, data=PostmortemCreate.model_validate(
            {"incident": incident_id, "title": work.postmortem_title(title), "owner": owner.id, **cast,
             **plan.written}))
    for action in MOVES[plan.status]:
        who = people[plan.approver] if action == "approve" else owner
        pm = await postmortems.transition(bk, pm_id=pm["_id"], action=action, user=who)
    return pm


# --- recommendations ----------------------------------------------------------------------------------

async def seed_recommendations(bk: Backends, data: DemoData, people: dict[str, User], ids: dict[str, str]) -> int:
    """The recommendations the responders asked for and rated: first on the resolved incidents detected in
    the last weeks (work.history_since), in the order they were detected (each rated, the most confident
    helpful one applied: what they did while it was in flight, so their ratings feed the later incidents'
    lists and the calibration), the guides revised meanwhile (`revise_guides`, the day after each day that met
    an incident); then on each
    incident in flight: rated once it is being investigated, the best helpful one applied once it is
    mitigated (work.rating). The confidence is refitted on the ratings before each revision, as the workers'
    periodic refit would have been by then (the same ratings give the same fit): before, whether the first
    requests after a fresh start used the prior or the refit depended on when a worker got to it."""
    names = {v: k for k, v in ids.items()}
    since = work.history_since(data.today or date.today())
    pending = sorted((i for i in data.incidents if i.status.value == "RESOLVED" and i.resolved_at
                      and i.detected_at >= since), key=lambda i: (i.detected_at, i.name))
    made = 0
    for revision in data.revisions:
        while pending and pending[0].detected_at < revision.at:
            made += await _respond(bk, data, people, ids, names, pending.pop(0).name, "RESOLVED")
        await calibration.refit(bk)
        await revise_guides(bk, revision.articles, data=data, people=people, ids=ids)
        await prepare(bk)
    for inc, status in [*((i, "RESOLVED") for i in pending),
                        *((i, i.status.value) for i in data.incidents if i.status.value in IN_FLIGHT)]:
        made += await _respond(bk, data, people, ids, names, inc.name, status)
    await calibration.refit(bk)
    return made


async def _respond(bk: Backends, data: DemoData, people: dict[str, User], ids: dict[str, str],
                   names: dict[str, str], incident: str, status: str) -> int:
    """The responder of `incident` asks for recommendations; rates them once working on it, applies the
    best helpful one once it is mitigated. How many were made."""
    if incident not in ids:
        return 0
    editor = people[data.responders[incident]]
    recs = await recommendations.generate_for_incident(bk, user=editor, data=GenerateRequest(incident_id=ids[incident]))
    if status not in (*RATED, "RESOLVED"):
        return len(recs)
    best = None
    for rec in recs:
        stars = await _rating(bk, data, rec, incident=incident, names=names)
        await recommendations.rate(bk, rec_id=rec["_id"], user=editor, data=RateRequest(rating=stars))
        if stars >= HELPFUL and rec["recommendation_type"] != "EXPERT" and best is None:
            best = rec
    if status in APPLIED and best is not None:
        await recommendations.apply(bk, rec_id=best["_id"], user=editor)
    return len(recs)


REVISED_FIELDS = ("content", "summary", "related_incidents", "search_keywords", "external_references", "tags",
                  "subcategory")


async def revise_guides(bk: Backends, revised: list[Article], *, data: DemoData, people: dict[str, User],
                        ids: dict[str, str]) -> None:
    """The runbooks, troubleshooting guides and best practices rewritten by their authors (a
    `DemoData.revisions` entry): a new version of the article of the same title when its text changed, or a
    new article (not featured)."""
    current = {d["title"]: d async for d in bk.mongo.articles.find({}, {"title": 1, "slug": 1, "content": 1})}
    slugs = {a.key: current[a.title]["slug"] for a in data.every_article() if a.title in current}
    for a in revised:
        author = people[a.author]
        fields = writing.fields(a, slugs=slugs, people=people, ids=ids)
        if a.title not in current:
            doc = await articles.create_article(bk, user=author, data=ArticleCreate.model_validate(
                {**fields, "is_featured": False}))
            slugs[a.key] = doc["slug"]
        elif current[a.title].get("content") != fields["content"]:
            changes = ArticleUpdate.model_validate({k: v for k, v in fields.items() if k in REVISED_FIELDS})
            await articles.update_article(bk, slug=current[a.title]["slug"], user=author, data=changes)


async def _rating(bk: Backends, data: DemoData, rec: dict[str, Any], *, incident: str, names: dict[str, str]) -> int:
    """How the responder rates `rec` (work.rating), from what it points at."""
    kind = rec["recommendation_type"]
    targets: list[str] = []
    if rec.get("related_incident"):
        targets.append(rec["related_incident"])
    title = ""
    if rec.get("knowledge_article"):
        art = await bk.mongo.articles.find_one({"_id": rec["knowledge_article"]}, {"title": 1, "related_incidents": 1})
        if art:
            title = art["title"]
            targets += art.get("related_incidents") or []
    if rec.get("learning_pattern"):
        pat = await bk.mongo.learning_patterns.find_one({"_id": rec["learning_pattern"]}, {"source_incidents": 1})
        targets += (pat or {}).get("source_incidents") or []
    causes = [data.causes[names[t]] for t in targets if names.get(t) in data.causes]
    if kind == "EXPERT":  # the incidents they worked on, as its reasoning names them
        causes += [data.causes[n] for n in INCIDENT_NAME.findall(rec.get("reasoning") or "") if n in data.causes]
    return work.rating(kind, cause=data.causes[incident], target_causes=causes, title=title,
                       guides=data.guides.get(incident, []))

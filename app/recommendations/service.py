"""Recommendations for an incident: every rule about them lives here (the scoring is app/recommendations/engine.py).

`generate_for_incident` gathers the evidence as the requester sees it — similar past incidents from the
shared hybrid similarity (same namespace by default), their postmortems, the knowledge-base articles the
incident's text ranks, the people who resolved similar incidents or maintain those articles, and the
ratings earlier recommendations of the same targets received — scores it, keeps those at or above
`min_confidence`, and stores at most `max_recommendations`, the types taking turns best first.

One recommendation per (incident, type, target): generating again refreshes the ones neither applied nor
rated in place (no duplicates); `force` replaces every one neither applied nor rated. Applied and rated
ones are history and never touched: their ratings feed every later incident and the calibration.
A recommendation's `data_classification` is the most secret of its incident's and its sources', so a
reader sees it only when they could see everything it names; a hidden one is answered like a missing one.

Applying and rating (`apply`, `rate`) are for editors and admins, and for a viewer who is one of the
incident's people: its assignee or reporter (usernames) or who created it (`may_act`). Anyone else gets a
403 and nothing changes — not the recommendation, not the ratings that rank later ones, not the audit log.
A recommendation the caller cannot see is a 404 first, whoever asks.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

from pymongo import ReturnDocument, UpdateOne
from opensearchpy.exceptions import OpenSearchException

from app import classification
from app.activity.service import record_audit
from app.articles import ranking
from app.articles import service as articles
from app.articles.models import SearchInput
from app.backends import Backends
from app.errors import NotFound, PermissionDenied, ValidationFailed
from app.incidents import service as incidents
from app.incidents import similarity
from app.listing import Filter, ListSpec, Page, visible_page
from app.permissions import Rule
from app.patterns import service as pattern_service
from app.patterns import triggers as trigger_rule
from app.recommendations import calibration, engine, feedback, meaning
from app.recommendations.models import (ConfidenceLevel, RateRequest, RecommendationGenerateRequest,
                                        RecommendationType, level_for)
from app.timefmt import utcnow
from app.users import service as users
from app.users.models import Role, User, require_role
from app.webhooks import events as webhook_events

T = RecommendationType
QUERY_CHARS = 480  # the article search text (SearchText allows 500)

LIST_SPEC = ListSpec(
    collection="recommendations",
    filters=(Filter("recommendation_type", "recommendation_type", RecommendationType),
             Filter("confidence_level", "confidence_level", ConfidenceLevel), Filter("is_applied", "is_applied", bool),
             Filter("incident", "incident", description="The incident: its name or its id", indexed=True)),
    search_fields=("title", "description", "reasoning"),
    ordering={"created_at": "created_at", "confidence_score": "confidence_score",
              "similarity_score": "similarity_score", "updated_at": "updated_at"},
    default_ordering=("-confidence_score",),
)


def _not_found(rec_id: str) -> NotFound:
    return NotFound(f"Recommendation '{rec_id}' not found", code="RECOMMENDATION_NOT_FOUND")


# --- reading --------------------------------------------------------------------------------------

async def get_recommendation(bk: Backends, *, rec_id: str, user: User) -> dict:
    if (doc := await classification.find_visible(bk.mongo.recommendations, rec_id, user)) is None:
        raise _not_found(rec_id)
    return doc


async def list_recommendations(bk: Backends, *, params: Mapping[str, Any], user: User) -> Page:
    """`?incident=` takes the incident's name or id."""
    return await visible_page(bk.mongo.recommendations, LIST_SPEC,
                              await incidents.incident_filter_param(bk, params, user=user), user, bk.settings)


MAX_PER_INCIDENT = 50


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PER_INCIDENT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_PER_INCIDENT}", {"field": "limit"})
    return limit


async def for_incidents(bk: Backends, *, incident_ids: list[str], user: User, limit: int) -> dict[str, list[dict]]:
    """Each incident's recommendations the user may see, most confident first, at most `limit` each; one query."""
    rows = await (await bk.mongo.recommendations.aggregate([
        {"$match": {"incident": {"$in": list(set(incident_ids))}, **classification.mongo_filter(user)}},
        {"$sort": {"incident": 1, "confidence_score": -1, "_id": 1}},
        {"$group": {"_id": "$incident", "docs": {"$push": "$$ROOT"}}},
        {"$project": {"docs": {"$slice": ["$docs", limit]}}},
    ])).to_list(None)
    return {r["_id"]: r["docs"] for r in rows}


# --- evidence -------------------------------------------------------------------------------------

def _query_text(incident: Mapping[str, Any]) -> str:
    events = [e.get("message") or "" for e in incidents.sorted_events(incident)[:5]]
    parts = [incident.get("title") or "", incident.get("root_cause") or "", " ".join(incident.get("affected_services") or []),
             incident.get("category") or "", *events, incident.get("description") or ""]
    text = " ".join(" ".join(p.split()) for p in parts if p)
    return "".join(ch for ch in text if ch.isprintable())[:QUERY_CHARS]


async def _own_ids(bk: Backends, incident: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """The incident, its canonical and its duplicates (ids and names): an article about one of them is
    the incident's own, not a recommendation."""
    ids = {incident["_id"]} | ({incident["duplicate_of"]} if incident.get("duplicate_of") else set())
    docs = await bk.mongo.incidents.find({"$or": [{"_id": {"$in": sorted(ids)}}, {"duplicate_of": {"$in": sorted(ids)}}]},
                                         {"name": 1}).to_list(None)
    ids |= {d["_id"] for d in docs}
    names = {d.get("name") for d in docs if d.get("name")} | ({incident["name"]} if incident.get("name") else set())
    return ids, names


def _is_own_article(article: Mapping[str, Any], own_ids: set[str], own_names: set[str],
                    own_postmortems: set[str]) -> bool:
    if set(article.get("related_incidents") or []) & own_ids:
        return True
    if set(article.get("source_postmortems") or []) & own_postmortems:
        return True
    title = article.get("title") or ""
    return any(n in title for n in own_names)


def article_signals(incident: Mapping[str, Any], article: Mapping[str, Any]) -> dict[str, Any]:
    """How far the article's steps match the incident's signs: the share of the incident's head words
    (title, services, first events) in the article's text; its services and category."""
    head = similarity.words(similarity._head(incident))
    text = " ".join([article.get("title") or "", article.get("summary") or "", (article.get("content") or "")[:6000],
                     " ".join(article.get("keywords") or []), " ".join(article.get("related_services") or [])])
    mine, theirs = set(incident.get("affected_services") or []), set(article.get("related_services") or [])
    return {"lexical": round(similarity._contained(head, similarity.words(text)), 4) if head else 0.0,
            "services": (len(mine & theirs) / len(mine | theirs)) if mine and theirs else None,
            "category": float(bool(incident.get("category")) and incident.get("category") == article.get("category"))}


async def _articles(bk: Backends, incident: Mapping[str, Any], user: User, limit: int) -> list[tuple[dict, float]]:
    """Articles the incident's text ranks, less its own (about it, a duplicate of it or its canonical)."""
    text = _query_text(incident)
    if not text.strip():
        return []
    try:
        res, (own_ids, own_names) = await asyncio.gather(
            ranking.search(bk, user=user, data=SearchInput(query=text, limit=min(limit + 5, 20)), record=False),
            _own_ids(bk, incident))
    except (OpenSearchException, OSError):
        return []
    own_pms = {d["_id"] for d in await bk.mongo.postmortems.find({"incident": {"$in": sorted(own_ids)}},
                                                                 {"_id": 1}).to_list(None)}
    return [(r["doc"], r["score"]) for r in res["results"]
            if not _is_own_article(r["doc"], own_ids, own_names, own_pms)][:limit]


async def _postmortems(bk: Backends, ids: list[str], user: User) -> dict[str, dict]:
    docs = await bk.mongo.postmortems.find({"incident": {"$in": ids}, **classification.mongo_filter(user)},
                                           {"incident": 1, "action_items": 1, "owner": 1, "approver": 1,
                                            "status": 1}).sort("created_at", 1).to_list(None)
    return {d["incident"]: d for d in docs}


async def _similar(bk: Backends, incident: dict, user: User, per_type: int) -> list[engine.Similar]:
    """Similar past incidents (same namespace), each with `cause` among its signals (meaning.py); none
    when the search engine cannot answer."""
    try:
        matches = await similarity.similar(bk, incident, user=user, limit=max(per_type * 2, 10),
                                           namespace=incident.get("namespace"))
    except (OpenSearchException, OSError):
        return []
    return [engine.Similar(doc=m.doc, score=m.score, factors=m.factors, signals=dict(m.signals)) for m in matches]


def _when(doc: Mapping[str, Any]) -> Any:
    return doc.get("resolved_at") or doc.get("detected_at") or doc.get("created_at")


def _on_it(incident: Mapping[str, Any], user: User) -> set[str]:
    """The people already on the incident — its assignee and reporter, and who asks: no one to send them to."""
    return {user.username} | {incident[f] for f in INCIDENT_PEOPLE if incident.get(f)}


def _runbooks_used(similar: list[engine.Similar]) -> dict[str, list[engine.Similar]]:
    """The runbooks the similar incidents' timelines record as used (RunbookMatch events, naming the runbook
    by title or slug), each with the incidents that used it."""
    used: dict[str, list[engine.Similar]] = {}
    for s in similar:
        for e in s.doc.get("timeline") or []:
            details = e.get("details") if isinstance(e.get("details"), dict) else {}
            if e.get("type") == "RunbookMatch" and details.get("runbook"):
                used.setdefault(str(details["runbook"]), []).append(s)
    return used


LOOKALIKES = 10  # the most similar incidents whose runbooks and articles vote for an article


async def _used_in_lookalikes(bk: Backends, incident: Mapping[str, Any], similar: list[engine.Similar],
                              user: User) -> dict[str, tuple[dict, engine.Lookalikes]]:
    """Articles about the incidents most like this one — the runbooks their timelines record as used, and
    the articles linked to them (`related_incidents`) — that `user` may see and that are not the incident's
    own, each with its share of the LOOKALIKES most similar incidents (weighted by similarity): "used in 6
    of the 10 most similar incidents" is what a responder acts on; a runbook named by one weak match is not."""
    top = [s for s in sorted(similar, key=lambda s: (-s.score, str(s.doc["_id"]))) if s.score > 0][:LOOKALIKES]
    total = sum(s.score for s in top)
    if not total:
        return {}
    used = _runbooks_used(top)
    refs = sorted(used)
    ids = [s.doc["_id"] for s in top]
    docs = await bk.mongo.articles.find({"$and": [articles.visibility(user), {"$or": [
        {"title": {"$in": refs}}, {"slug": {"$in": refs}}, {"related_incidents": {"$in": ids}}]}]}).to_list(None)
    own_ids, own_names = await _own_ids(bk, incident)
    own_pms = {d["_id"] for d in await bk.mongo.postmortems.find({"incident": {"$in": sorted(own_ids)}},
                                                                 {"_id": 1}).to_list(None)}
    out: dict[str, tuple[dict, engine.Lookalikes]] = {}
    for a in docs:
        if _is_own_article(a, own_ids, own_names, own_pms):
            continue
        linked = set(a.get("related_incidents") or [])
        members = {id(s): s for s in [*used.get(a.get("title") or "", []), *used.get(a.get("slug") or "", []),
                                      *(s for s in top if s.doc["_id"] in linked)]}.values()
        if members:
            names = sorted((s for s in members), key=lambda s: (-s.score, str(s.doc["_id"])))
            out[a["_id"]] = (a, engine.Lookalikes(share=round(sum(s.score for s in members) / total, 4),
                                                  names=[str(s.doc.get("name") or s.doc["_id"]) for s in names],
                                                  of=len(top)))
    return out


async def _experts_evidence(bk: Backends, similar: list[engine.Similar], pms: Mapping[str, dict],
                            user: User, *, on_it: set[str] = frozenset()) -> tuple[list[engine.Work], dict[str, dict]]:
    """Who worked on the similar incidents: the resolver (the Resolution event's actor), the assignee,
    the postmortem's owner and approver, the authors of the runbooks used (RunbookMatch events) — and the
    people among them to consider: active users who are not service accounts (bots, importers) and not
    already on the incident (`on_it`)."""
    work: list[engine.Work] = []
    by_id_roles: list[tuple[str, str, engine.Similar]] = []
    runbook_titles = _runbooks_used(similar)
    for s in similar:
        for e in s.doc.get("timeline") or []:
            details = e.get("details") if isinstance(e.get("details"), dict) else {}
            if e.get("type") == "Resolution" and details.get("actor"):
                work.append(engine.Work(details["actor"], "resolver", s, _when(s.doc)))
        if s.doc.get("assignee"):
            work.append(engine.Work(s.doc["assignee"], "assignee", s, _when(s.doc)))
        pm = pms.get(s.doc["_id"]) or {}
        for field_, role in (("owner", "postmortem_owner"), ("approver", "postmortem_approver")):
            if pm.get(field_):
                by_id_roles.append((pm[field_], role, s))
    if runbook_titles:
        books = await bk.mongo.articles.find({"title": {"$in": sorted(runbook_titles)}, **classification.mongo_filter(user)},
                                             {"title": 1, "author": 1, "maintainer": 1}).to_list(None)
        for b in books:
            for person in {b.get("author"), b.get("maintainer")} - {None}:
                for s in runbook_titles.get(b["title"], []):
                    by_id_roles.append((person, "runbook_author", s))
    by_id = await users.users_by_ids(bk, ids=sorted({i for i, _, _ in by_id_roles})) if by_id_roles else {}
    for uid, role, s in by_id_roles:
        if (p := by_id.get(uid)) is not None:
            work.append(engine.Work(p.username, role, s, _when(s.doc)))
    found = await users.users_by_usernames(bk, usernames=sorted({w.username for w in work}))
    people = {name: {"_id": p.id, "team": p.team} for name, p in found.items()
              if not getattr(p, "service_account", False) and name not in on_it}
    return work, people


async def _none() -> Any:
    return None


async def _candidates(bk: Backends, incident: dict, types: list[RecommendationType], user: User,
                      per_type: int) -> list[dict]:
    """Scored candidates of the requested types, each with `sources` (the documents it names).

    The evidence is gathered concurrently, in two rounds: what depends only on the incident (the
    calibration, similar incidents, the article search, the validated patterns), then what depends on
    those (feedback, postmortems, the people). The two searches wait on the search engine and the query
    embedding on a thread, so overlapping them takes the article search off the critical path
    (bench/recommendation_latency.py). A failure in any part fails the whole, with its own error."""
    want = set(types)
    need_similar = bool({T.SIMILAR_INCIDENT, T.SOLUTION, T.EXPERT, T.KNOWLEDGE_ARTICLE} & want)
    need_articles = bool({T.KNOWLEDGE_ARTICLE, T.EXPERT} & want)
    # asyncio.gather, not a TaskGroup: an error reaches the caller as itself (a TaskGroup would wrap it
    # in an ExceptionGroup, which the error handlers do not know: a 500 instead of, say, a 503)
    params, similar, found_articles, patterns = await asyncio.gather(
        calibration.current(bk),
        _similar(bk, incident, user, per_type) if need_similar else _none(),
        _articles(bk, incident, user, per_type * 2) if need_articles else _none(),
        pattern_service.validated_matching(bk, incident=incident, user=user)
        if T.LEARNING_PATTERN in want else _none())
    similar = similar or []
    found_articles = found_articles or []
    patterns = patterns or []
    similar_ids = [s.doc["_id"] for s in similar]
    lookalikes = await _used_in_lookalikes(bk, incident, similar, user) if T.KNOWLEDGE_ARTICLE in want else {}
    searched = {a["_id"] for a, _ in found_articles}  # and those the search did not rank: relevance 0
    found_articles += [(a, 0.0) for k, (a, _) in sorted(lookalikes.items()) if k not in searched]
    causes, meanings = await meaning.agreement(incident, causes_of=[s.doc for s in similar],
                                               articles=[a for a, _ in found_articles])
    for s in similar:
        s.signals["cause"] = causes.get(s.doc["_id"], 0.0)

    def feedback_for(rec_type: RecommendationType, targets: list[str]):
        return (feedback.gather(bk, rec_type.value, targets, incident=incident, user=user) if rec_type in want
                else _none())

    fb_similar, fb_solution, pms, fb_article, fb_pattern = await asyncio.gather(
        feedback_for(T.SIMILAR_INCIDENT, similar_ids),
        feedback_for(T.SOLUTION, similar_ids),
        _postmortems(bk, similar_ids, user) if {T.SOLUTION, T.EXPERT} & want else _none(),
        feedback_for(T.KNOWLEDGE_ARTICLE, [a["_id"] for a, _ in found_articles]),
        feedback_for(T.LEARNING_PATTERN, [p["_id"] for p in patterns]))
    pms = pms or {}

    out: list[dict] = []
    if T.SIMILAR_INCIDENT in want:
        fb = fb_similar
        out += [{**engine.similar_incident(s, fb=fb.get(s.doc["_id"]), params=params[T.SIMILAR_INCIDENT.value]),
                 "sources": [s.doc]} for s in similar]
    if T.SOLUTION in want:
        fb = fb_solution
        for s in similar:
            rec = engine.solution(s, postmortem=pms.get(s.doc["_id"]), fb=fb.get(s.doc["_id"]),
                                  params=params[T.SOLUTION.value])
            if rec:
                out.append({**rec, "sources": [s.doc, pms.get(s.doc["_id"])]})
    if T.KNOWLEDGE_ARTICLE in want:
        fb = fb_article
        out += [{**engine.knowledge_article(a, score, signals={**article_signals(incident, a),
                                                              "semantic": meanings.get(a["_id"], 0.0)},
                                            used=lookalikes.get(a["_id"], (None, None))[1], fb=fb.get(a["_id"]),
                                            params=params[T.KNOWLEDGE_ARTICLE.value]),
                 "sources": [a]} for a, score in found_articles]
    if T.EXPERT in want:
        work, people_docs = await _experts_evidence(bk, similar, pms, user, on_it=_on_it(incident, user))
        fb = await feedback.gather(bk, T.EXPERT.value, [p["_id"] for p in people_docs.values()],
                                   incident=incident, user=user)
        for rec in engine.experts(work, people_docs, now=utcnow(), feedback=fb, params=params[T.EXPERT.value]):
            out.append({**rec, "sources": [s.doc for s in similar]})
    if T.LEARNING_PATTERN in want:
        fb = fb_pattern
        text = trigger_rule.incident_text(incident)
        for p in patterns:
            if rec := engine.learning_pattern(p, text, fb=fb.get(p["_id"]), params=params[T.LEARNING_PATTERN.value]):
                out.append({**rec, "sources": [p]})
    return out


def _pick(candidates: list[dict], *, limit: int, min_confidence: float) -> list[dict]:
    """At most `limit`, the types taking turns, each type's best first."""
    queues: dict[str, list[dict]] = {}
    for c in sorted(candidates, key=lambda c: (-c["confidence_score"], c.get("sort_key") or "", str(c["target"]))):
        if c["confidence_score"] >= min_confidence:
            queues.setdefault(c["recommendation_type"], []).append(c)
    picked: list[dict] = []
    while len(picked) < limit and any(queues.values()):
        for queue in queues.values():
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    return picked


# --- writing --------------------------------------------------------------------------------------

@dataclass
class Generated:
    """What a generation stored (`recommendations`, best first), and what it held back: how many candidates
    scored below `min_confidence` and the best of them (type, title, confidence), so an empty answer says
    how far the evidence fell short instead of looking like success."""

    recommendations: list[dict]
    withheld: int = 0
    best_withheld: list[dict] = field(default_factory=list)

    def message(self, min_confidence: float) -> str:
        if self.recommendations:
            return "Recommendations generated successfully"
        if not self.withheld:
            return "No recommendation: nothing the incident resembles was found to recommend from"
        best = self.best_withheld[0]
        return (f"No recommendation reached min_confidence {min_confidence:g}: the strongest evidence was "
                f"{best['confidence_score']:.2f} ({best['type']}: {best['title']}); lower min_confidence to see it")


WITHHELD_SHOWN = 3


async def generate_for_incident(bk: Backends, *, data: RecommendationGenerateRequest, user: User) -> list[dict]:
    """Score, keep and store recommendations for an incident the user may see (editor). Returns them, best first."""
    return (await generate(bk, data=data, user=user)).recommendations


async def generate(bk: Backends, *, data: RecommendationGenerateRequest, user: User) -> Generated:
    """`generate_for_incident`, with what it held back below `min_confidence` (`Generated`)."""
    require_role(user, Role.EDITOR)
    incident = await incidents.referenced_incident(bk, incident_id=data.incident_id, user=user, field="incident_id",
                                                   projection=None)
    types = list(data.recommendation_types)
    candidates = await _candidates(bk, incident, types, user, data.max_recommendations)
    picked = _pick(candidates, limit=data.max_recommendations, min_confidence=data.min_confidence)
    below = sorted((c for c in candidates if c["confidence_score"] < data.min_confidence),
                   key=lambda c: (-c["confidence_score"], c.get("sort_key") or "", str(c["target"])))
    held = Generated([], withheld=len(below), best_withheld=[
        {"type": c["recommendation_type"], "title": c["title"], "confidence_score": c["confidence_score"]}
        for c in below[:WITHHELD_SHOWN]])
    now = utcnow()
    # applied or rated ones are history: never rewritten or replaced (ratings feed every later incident)
    settled = {"incident": incident["_id"], "$or": [{"is_applied": True}, {"effectiveness_rating": {"$ne": None}}]}
    applied = {(d["recommendation_type"], d["target"]) async for d in
               bk.mongo.recommendations.find(settled, {"recommendation_type": 1, "target": 1})}
    ops = []
    for c in picked:
        if (c["recommendation_type"], c["target"]) in applied:
            continue
        sources = c.pop("sources")
        fields = {**{k: c.get(k) for k in ("title", "description", "similarity_score", "confidence_score", "raw_score",
                                           "reasoning", "matching_factors", "related_incident", "knowledge_article",
                                           "suggested_expert", "suggested_actions", "expected_outcome",
                                           "time_to_implement", "learning_pattern", "confidence_features")},
                  "confidence_level": level_for(c["confidence_score"]).value, "model_version": engine.MODEL_VERSION,
                  "data_classification": classification.most_secret([incident, *sources]), "updated_at": now}
        ops.append(UpdateOne(
            {"incident": incident["_id"], "recommendation_type": c["recommendation_type"], "target": c["target"]},
            {"$set": fields, "$setOnInsert": {"_id": str(uuid.uuid4()), "created_at": now, "is_applied": False,
                                              "applied_at": None, "applied_by": None, "effectiveness_rating": None,
                                              "created_by": user.id}},
            upsert=True))

    async def op(s):
        if data.force:  # replace every recommendation of these types neither applied nor rated
            await bk.mongo.recommendations.delete_many(
                {"incident": incident["_id"], "is_applied": False, "effectiveness_rating": None,
                 "recommendation_type": {"$in": [t.value for t in types]}}, session=s)
        if ops:
            written = await bk.mongo.recommendations.bulk_write(ops, ordered=False, session=s)
            if new := list(written.upserted_ids.values()):  # the new ones are announced to webhooks
                await webhook_events.announce_each(bk, "recommendation.generated", await bk.mongo.recommendations.find(
                    {"_id": {"$in": new}}, session=s).to_list(None), session=s)
        await record_audit(bk, action="generate_recommendations", user=user, subject_type="incident",
                           subject_id=incident["_id"], changes={"types": [t.value for t in types],
                                                                "stored": len(ops), "force": data.force}, session=s)

    await bk.transaction(op)
    keys = [{"recommendation_type": c["recommendation_type"], "target": c["target"]} for c in picked]
    if not keys:
        return held
    docs = await bk.mongo.recommendations.find({"incident": incident["_id"], "$or": keys,
                                                **classification.mongo_filter(user)}).to_list(None)
    order = {(c["recommendation_type"], c["target"]): i for i, c in enumerate(picked)}
    docs.sort(key=lambda d: (-d["confidence_score"], order.get((d["recommendation_type"], d["target"]), 0)))
    held.recommendations = docs
    return held


INCIDENT_PEOPLE = ("assignee", "reporter")  # usernames; and `created_by`, a user id


# Applying or rating a recommendation (app/permissions.py): the REST operations and GraphQL fields declare it.
ACT_RULE = Rule(ownership="a viewer only on an incident of theirs (its assignee, reporter or creator); editors and "
                          "admins on any they can see")


async def may_act(bk: Backends, *, rec: Mapping[str, Any], user: User) -> None:
    """403 unless the user may apply or rate `rec` (one they can see): an editor or admin, or one of its
    incident's people — the assignee, the reporter or who created it, on an incident they can see."""
    if user.has_role(Role.EDITOR):
        return
    incident = await bk.mongo.incidents.find_one({"_id": rec.get("incident"), **classification.mongo_filter(user)},
                                                 {**{f: 1 for f in INCIDENT_PEOPLE}, "created_by": 1})
    if incident is not None and (user.username in {incident.get(f) for f in INCIDENT_PEOPLE}
                                 or incident.get("created_by") == user.id):
        return
    raise PermissionDenied("Only an editor, an admin or one of the incident's people (its assignee or reporter) "
                           "may apply or rate its recommendations",
                           {"role": user.role.value, "required": "editor, or the incident's assignee or reporter"})


async def apply(bk: Backends, *, rec_id: str, user: User) -> dict:
    """Record that the user applied it (who and when; `may_act`); applying again changes nothing."""
    current = await get_recommendation(bk, rec_id=rec_id, user=user)
    await may_act(bk, rec=current, user=user)
    if current.get("is_applied"):
        return current
    now = utcnow()

    async def op(s):
        doc = await bk.mongo.recommendations.find_one_and_update(
            {"_id": rec_id, "is_applied": False}, {"$set": {"is_applied": True, "applied_at": now, "applied_by": user.id,
                                                            "updated_at": now}},
            session=s, return_document=ReturnDocument.AFTER)
        if doc is not None:
            await record_audit(bk, action="apply", user=user, subject_type="recommendation", subject_id=rec_id,
                               changes={"incident": current["incident"]}, session=s)
        return doc

    return await bk.transaction(op) or await get_recommendation(bk, rec_id=rec_id, user=user)


async def rate(bk: Backends, *, rec_id: str, data: RateRequest, user: User) -> dict:
    """Rate how well it worked (1-5; `may_act`): the latest rating is `effectiveness_rating`; each rating is kept."""
    current = await get_recommendation(bk, rec_id=rec_id, user=user)
    await may_act(bk, rec=current, user=user)
    now = utcnow()

    async def op(s):
        doc = await bk.mongo.recommendations.find_one_and_update(
            {"_id": rec_id}, {"$set": {"effectiveness_rating": data.rating, "rated_at": now, "rated_by": user.id,
                                       "updated_at": now},
                              "$push": {"ratings": {"$each": [{"user": user.id, "rating": data.rating, "at": now}],
                                                    "$slice": -100}}},
            session=s, return_document=ReturnDocument.AFTER)
        if doc is not None:
            await record_audit(bk, action="rate", user=user, subject_type="recommendation", subject_id=rec_id,
                               changes={"incident": current["incident"], "rating": data.rating}, session=s)
        return doc

    doc = await bk.transaction(op)
    if doc is None:
        raise _not_found(rec_id)
    return doc

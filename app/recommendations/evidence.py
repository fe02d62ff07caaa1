"""The evidence a recommendation is scored on, gathered as the requester sees it (app/recommendations/service.py
keeps, stores and serves what it scores): similar past incidents from the shared hybrid similarity (same
namespace by default), their postmortems, the knowledge-base articles the incident's text ranks and those the
most similar incidents used, the people who worked on similar incidents, the validated patterns that match,
and the ratings earlier recommendations of the same targets received. `candidates` scores it (engine.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from opensearchpy.exceptions import OpenSearchException

from app import classification
from app.articles import ranking
from app.articles import service as articles
from app.articles.models import FOLLOWED_TYPES, ArticleType, SearchInput
from app.backends import Backends
from app.incidents import service as incidents
from app.incidents import similarity
from app.patterns import service as pattern_service
from app.patterns import triggers as trigger_rule
from app.recommendations import calibration, engine, feedback, meaning
from app.recommendations.models import RecommendationType
from app.timefmt import utcnow
from app.users import service as users
from app.users.models import User

T = RecommendationType
QUERY_CHARS = 480  # the article search text (SearchText allows 500)
INCIDENT_PEOPLE = ("assignee", "reporter")  # usernames; and `created_by`, a user id


def _query_text(incident: Mapping[str, Any]) -> str:
    events = [e.get("message") or "" for e in incidents.sorted_events(incident)[:5]]
    parts = [incident.get("title") or "", incident.get("root_cause") or "", " ".join(incident.get("affected_services") or []),
             incident.get("category") or "", *events, incident.get("description") or ""]
    text = " ".join(" ".join(p.split()) for p in parts if p)
    return "".join(ch for ch in text if ch.isprintable())[:QUERY_CHARS]


@dataclass(frozen=True)
class Own:
    """The incident, its canonical and its duplicates (ids and names) and their postmortems: an article about
    one of them is the incident's own, not a recommendation."""

    ids: frozenset[str]
    names: frozenset[str]
    postmortems: frozenset[str]

    def article(self, article: Mapping[str, Any]) -> bool:
        """Whether `article` is about the incident: a postmortem summary linked to it, an article linked to it
        (or its twins) alone, one written from its postmortems, or one naming it. A runbook or guide written
        from several incidents, this one among them, is what the next such incident needs, not its own."""
        if set(article.get("related_incidents") or []) & self.ids and (
                about_only(article, self.ids) or article.get("article_type") == "POSTMORTEM_SUMMARY"):
            return True
        if set(article.get("source_postmortems") or []) & self.postmortems:
            return True
        title = article.get("title") or ""
        return any(n in title for n in self.names)


def about_only(article: Mapping[str, Any], incidents: Iterable[str]) -> bool:
    """Whether `article` is linked to some of `incidents` and to nothing else."""
    linked = set(article.get("related_incidents") or [])
    return bool(linked) and linked <= set(incidents)


def summary_of(candidate: Mapping[str, Any], incidents: Iterable[str]) -> bool:
    """Whether a candidate (`candidates`) is the postmortem summary of some of `incidents` alone."""
    if candidate["recommendation_type"] != T.KNOWLEDGE_ARTICLE.value:
        return False
    article = (candidate.get("sources") or [{}])[0] or {}
    return article.get("article_type") == "POSTMORTEM_SUMMARY" and about_only(article, incidents)


async def _own(bk: Backends, incident: Mapping[str, Any]) -> Own:
    ids = {incident["_id"]} | ({incident["duplicate_of"]} if incident.get("duplicate_of") else set())
    docs = await bk.mongo.incidents.find({"$or": [{"_id": {"$in": sorted(ids)}}, {"duplicate_of": {"$in": sorted(ids)}}]},
                                         {"name": 1}).to_list(None)
    ids |= {d["_id"] for d in docs}
    names = {d.get("name") for d in docs if d.get("name")} | ({incident["name"]} if incident.get("name") else set())
    pms = {d["_id"] for d in await bk.mongo.postmortems.find({"incident": {"$in": sorted(ids)}}, {"_id": 1}).to_list(None)}
    return Own(frozenset(ids), frozenset(names), frozenset(pms))


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


# What a KNOWLEDGE_ARTICLE may be: an article about a kind of failure or one incident. A category's catalogue
# (REFERENCE) or FAQ lists every cause of the category: its words match any incident's (the demo offered
# "Software incident catalogue" at 0.80 for a spacecraft reset), and it is found by search, not recommended.
RECOMMENDED_TYPES = (*FOLLOWED_TYPES, ArticleType.POSTMORTEM_SUMMARY.value)


ARTICLE_POOL = 20  # the articles the incident's text ranks: always as many, whatever number is asked for


async def _articles(bk: Backends, incident: Mapping[str, Any], user: User) -> list[tuple[dict, float]]:
    """The ARTICLE_POOL articles the incident's text ranks best, best first (its own among them: `Own.article`
    leaves them out)."""
    text = _query_text(incident)
    if not text.strip():
        return []
    try:
        res = await ranking.search(bk, user=user, data=SearchInput(query=text, limit=ARTICLE_POOL,
                                                                   article_types=list(RECOMMENDED_TYPES)), record=False)
    except (OpenSearchException, OSError):
        return []
    return [(r["doc"], r["score"]) for r in res["results"]]


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


async def _used_in_lookalikes(bk: Backends, similar: list[engine.Similar], user: User,
                              own: Own) -> dict[str, tuple[dict, engine.Lookalikes]]:
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
    docs = await bk.mongo.articles.find({"$and": [
        articles.visibility(user), {"article_type": {"$in": list(RECOMMENDED_TYPES)}}, {"$or": [
        {"title": {"$in": refs}}, {"slug": {"$in": refs}}, {"related_incidents": {"$in": ids}}]}]}).to_list(None)
    out: dict[str, tuple[dict, engine.Lookalikes]] = {}
    for a in docs:
        if own.article(a):
            continue
        linked = set(a.get("related_incidents") or []) - own.ids
        members = {id(s): s for s in [*used.get(a.get("title") or "", []), *used.get(a.get("slug") or "", []),
                                      *(s for s in top if s.doc["_id"] in linked)]}.values()
        if members:
            names = sorted((s for s in members), key=lambda s: (-s.score, str(s.doc["_id"])))
            out[a["_id"]] = (a, engine.Lookalikes(share=round(sum(s.score for s in members) / total, 4),
                                                  names=[str(s.doc.get("name") or s.doc["_id"]) for s in names],
                                                  of=len(top), focus=_focus(linked, top)))
    return out


def _focus(linked: set[str], top: list[engine.Similar]) -> float:
    """How much of an article is about incidents like this one: the share of the incidents it is written
    from (`linked`) that are among the most similar (`top`), each counted as similar as it is. A runbook of
    this kind of failure is mostly look-alikes; a catch-all ("other failure modes") cites them among many
    others, so however many of the look-alikes it cites, most of it is about something else."""
    if not linked:
        return 0.0
    return round(sum(s.score for s in top if s.doc["_id"] in linked) / len(linked), 4)


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


async def candidates(bk: Backends, incident: dict, types: list[RecommendationType], user: User,
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
    params, similar, ranked_articles, own, patterns = await asyncio.gather(
        calibration.current(bk),
        _similar(bk, incident, user, per_type) if need_similar else _none(),
        _articles(bk, incident, user) if need_articles else _none(),
        _own(bk, incident) if need_articles else _none(),
        pattern_service.validated_matching(bk, incident=incident, user=user)
        if T.LEARNING_PATTERN in want else _none())
    similar = similar or []
    ranked = [(a, score) for a, score in ranked_articles or [] if not own.article(a)]
    found_articles = ranked[:per_type * 2]
    patterns = patterns or []
    similar_ids = [s.doc["_id"] for s in similar]
    lookalikes = await _used_in_lookalikes(bk, similar, user, own) if T.KNOWLEDGE_ARTICLE in want else {}
    # and the look-alikes' articles beyond those kept, each with its relevance when the search ranked it (lower
    # than those kept), 0 when it did not: an article's confidence never depends on how many were asked for
    relevance = {a["_id"]: score for a, score in ranked}
    kept = {a["_id"] for a, _ in found_articles}
    found_articles += [(a, relevance.get(k, 0.0)) for k, (a, _) in sorted(lookalikes.items()) if k not in kept]
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

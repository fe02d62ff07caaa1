"""KPIs for dashboards: how well the organisation learns from its incidents, overall and per week.

Over the last `weeks` whole weeks (Monday 00:00 UTC; the current week so far is the last), optionally cut to
one team (incidents and postmortems that name it in `affected_teams`; knowledge-base usage of its members)
or one namespace (incidents, and the postmortems and recommendations of its incidents; knowledge-base usage
is not namespaced and stays whole). Every figure counts only what the caller may see: documents by their
classification, knowledge-base usage by `usage_scope` (the events of people who could see no more than the
caller). A rate with nothing to divide by is null — "no data", never a confident 0.

- `postmortem_completion_rate`: of the postmortems due in the week (due date passed), those published by
  their due date.
- `median_time_to_publish` (seconds): of the postmortems published in the week, from the incident's
  resolution (its creation when the incident has none) to publication.
- `action_item_closure_rate`: of the action items of the postmortems written in the week, those DONE or
  WONT_DO; `overdue_action_items`: open ones past their due date, now.
- `kb_views`, `kb_searches`, `kb_zero_result_rate` (searches that found nothing / searches).
- `recommendation_acceptance_rate`: of the recommendations generated in the week, those applied;
  `mean_effectiveness_rating`: of the ratings given in the week (1-5).
- `incidents_by_severity` (detected in the week), `mean_time_to_detect` (seconds from an incident's first
  timeline event to its detection, where one precedes it), `mean_time_to_resolve` (detection to resolution,
  of those resolved in the week).
- `rising_patterns`: learning patterns whose source incidents were detected more often in the window's second
  half than in its first.

Each collection is read by aggregations over the window, side by side, from an index on the time field it is
bucketed by (app/db.py); a cut to a team or namespace is one indexed read of its incidents' ids. An answer is
kept CACHE_SECONDS per view (what the caller may see, window, cut), so a figure is at most a minute old; the
cost at 100k incidents is in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import datetime, timedelta
from typing import Any

from app import classification
from app.articles.service import usage_scope
from app.backends import Backends
from app.inputs import Param
from app.incidents.models import Severity
from app.postmortems.models import SETTLED_ITEM_STATUSES
from app.timefmt import isoz, utcnow
from app.users.models import User

MAX_WEEKS = 104
RISING_TOP = 10
MAX_PATTERNS = 2000  # the patterns weighed for `rising_patterns` (the most confident first)
# An answer is kept this long per (what the caller may see, window, cut): a dashboard's reloads and the
# processes' many readers cost one computation a minute (a figure is at most this old).
CACHE_SECONDS = 60.0
CACHE_MAX = 256
_cache: dict[tuple, tuple[float, dict[str, Any]]] = {}


def week_start(at: datetime) -> datetime:
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def _week(field: str) -> dict[str, Any]:
    return {"$dateTrunc": {"date": f"${field}", "unit": "week", "startOfWeek": "monday", "timezone": "UTC"}}


class Window:
    """The weeks a KPI request covers, and its cut (team, namespace) as filters per collection."""

    def __init__(self, *, weeks: int, team: str | None, namespace: str | None, now: datetime | None = None):
        self.now = now or utcnow()
        self.until = self.now
        self.weeks = [week_start(self.now) - timedelta(weeks=w) for w in range(weeks - 1, -1, -1)]
        self.since = self.weeks[0]
        self.middle = self.since + (self.until - self.since) / 2
        self.team, self.namespace = team or None, namespace or None
        self.of_incident: dict[str, Any] = {}  # set by resolve_cut

    def range(self) -> dict[str, datetime]:
        return {"$gte": self.since, "$lt": self.until}

    def incident_cut(self) -> dict[str, Any]:
        cut: dict[str, Any] = {}
        if self.team:
            cut["affected_teams"] = self.team
        if self.namespace:
            cut["namespace"] = self.namespace
        return cut

    async def resolve_cut(self, bk: Backends) -> None:
        """The incidents in the cut, as a clause on `incident` for the documents that name one (postmortems,
        recommendations): one indexed read of their ids, not a lookup per document."""
        cut = self.incident_cut()
        if cut:
            ids = [d["_id"] async for d in bk.mongo.incidents.find(cut, {"_id": 1})]
            self.of_incident = {"incident": {"$in": ids}}


async def _rows(collection, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return await (await collection.aggregate(pipeline)).to_list(None)


async def _incidents(bk: Backends, w: Window, visible: dict[str, Any]) -> dict[datetime, dict[str, Any]]:
    detected, resolved = await asyncio.gather(_rows(bk.mongo.incidents, [
        {"$match": {**visible, **w.incident_cut(), "detected_at": w.range()}},
        {"$project": {"week": _week("detected_at"), "severity": 1, "detect": {"$let": {
            "vars": {"first": {"$min": "$timeline.timestamp"}},
            "in": {"$cond": [{"$lt": ["$$first", "$detected_at"]},
                             {"$subtract": ["$detected_at", "$$first"]}, None]}}}}},
        {"$group": {"_id": {"week": "$week", "severity": "$severity"}, "n": {"$sum": 1},
                    "detect_ms": {"$sum": {"$ifNull": ["$detect", 0]}},
                    "detected": {"$sum": {"$cond": [{"$ne": ["$detect", None]}, 1, 0]}}}}]),
        _rows(bk.mongo.incidents, [
        {"$match": {**visible, **w.incident_cut(), "resolved_at": w.range(), "detected_at": {"$ne": None}}},
        {"$group": {"_id": _week("resolved_at"), "n": {"$sum": 1},
                    "ms": {"$sum": {"$max": [0, {"$subtract": ["$resolved_at", "$detected_at"]}]}}}}]))
    out: dict[datetime, dict[str, Any]] = {}
    for r in detected:
        b = out.setdefault(r["_id"]["week"], {"severity": {}, "detect_ms": 0, "detected": 0})
        b["severity"][r["_id"]["severity"]] = b["severity"].get(r["_id"]["severity"], 0) + r["n"]
        b["detect_ms"] += r["detect_ms"]
        b["detected"] += r["detected"]
    for r in resolved:
        b = out.setdefault(r["_id"], {"severity": {}, "detect_ms": 0, "detected": 0})
        b["resolved"], b["resolve_ms"] = r["n"], r["ms"]
    return out


async def _postmortems(bk: Backends, w: Window, visible: dict[str, Any]) -> dict[str, Any]:
    due_until = min(w.until, w.now)
    due, published, items, overdue = await asyncio.gather(_rows(bk.mongo.postmortems, [
        {"$match": {**visible, **w.of_incident, "due_date": {"$gte": w.since, "$lt": due_until}}},
        {"$group": {"_id": _week("due_date"), "due": {"$sum": 1}, "on_time": {"$sum": {"$cond": [
            {"$and": [{"$ne": [{"$ifNull": ["$published_at", None]}, None]},
                      {"$lte": ["$published_at", "$due_date"]}]}, 1, 0]}}}}]), _rows(bk.mongo.postmortems, [
        {"$match": {**visible, **w.of_incident, "published_at": w.range()}},
        {"$lookup": {"from": "incidents", "localField": "incident", "foreignField": "_id",
                     "pipeline": [{"$project": {"resolved_at": 1}}], "as": "_incident"}},
        {"$project": {"week": _week("published_at"), "from": {"$let": {
            "vars": {"resolved": {"$first": "$_incident.resolved_at"}},
            "in": {"$cond": [{"$and": [{"$ne": [{"$ifNull": ["$$resolved", None]}, None]},
                                       {"$lte": ["$$resolved", "$published_at"]}]},
                             "$$resolved", "$created_at"]}}}, "published_at": 1}},
        {"$group": {"_id": "$week", "ms": {"$push": {"$subtract": ["$published_at", "$from"]}}}}]),
        _rows(bk.mongo.postmortems, [
        {"$match": {**visible, **w.of_incident, "created_at": w.range()}},
        {"$unwind": "$action_items"},
        {"$group": {"_id": _week("created_at"), "items": {"$sum": 1}, "closed": {"$sum": {"$cond": [
            {"$in": ["$action_items.status", list(SETTLED_ITEM_STATUSES)]}, 1, 0]}}}}]),
        _rows(bk.mongo.postmortems, [
        {"$match": {**visible, **w.of_incident, "action_items": {"$elemMatch": {
            "due_date": {"$lt": w.now}, "status": {"$nin": list(SETTLED_ITEM_STATUSES)}}}}},
        {"$unwind": "$action_items"},
        {"$match": {"action_items.due_date": {"$lt": w.now},
                    "action_items.status": {"$nin": list(SETTLED_ITEM_STATUSES)}}}, {"$count": "n"}]))
    return {"due": {r["_id"]: r for r in due}, "published": {r["_id"]: r["ms"] for r in published},
            "items": {r["_id"]: r for r in items}, "overdue": overdue[0]["n"] if overdue else 0}


async def _recommendations(bk: Backends, w: Window, visible: dict[str, Any]) -> dict[str, Any]:
    generated, rated = await asyncio.gather(_rows(bk.mongo.recommendations, [
        {"$match": {**visible, **w.of_incident, "created_at": w.range()}},
        {"$group": {"_id": _week("created_at"), "n": {"$sum": 1},
                    "applied": {"$sum": {"$cond": [{"$eq": ["$is_applied", True]}, 1, 0]}}}}]),
        _rows(bk.mongo.recommendations, [
        {"$match": {**visible, **w.of_incident, "rated_at": w.range(), "effectiveness_rating": {"$ne": None}}},
        {"$group": {"_id": _week("rated_at"), "n": {"$sum": 1}, "sum": {"$sum": "$effectiveness_rating"}}}]))
    return {"generated": {r["_id"]: r for r in generated}, "rated": {r["_id"]: r for r in rated}}


async def _usage(bk: Backends, w: Window, user: User) -> dict[datetime, dict[str, int]]:
    match: dict[str, Any] = {**usage_scope(user), "kind": {"$in": ["article.view", "article.search"]},
                             "at": w.range()}
    if w.team:
        members = await bk.mongo.users.distinct("_id", {"team": w.team})
        match["user_id"] = {"$in": members}
    rows = await _rows(bk.mongo.usage_events, [
        {"$match": match},
        {"$group": {"_id": {"week": _week("at"), "kind": "$kind"}, "n": {"$sum": 1},
                    "zero": {"$sum": {"$cond": [{"$eq": ["$result_count", 0]}, 1, 0]}}}}])
    out: dict[datetime, dict[str, int]] = {}
    for r in rows:
        b = out.setdefault(r["_id"]["week"], {"views": 0, "searches": 0, "zero": 0})
        if r["_id"]["kind"] == "article.view":
            b["views"] += r["n"]
        else:
            b["searches"] += r["n"]
            b["zero"] += r["zero"]
    return out


async def rising_patterns(bk: Backends, w: Window, visible: dict[str, Any]) -> list[dict[str, Any]]:
    """The patterns the caller may see whose source incidents (that they may see, in the cut) were detected
    more often in the window's second half than in its first, the steepest rise first."""
    patterns = await bk.mongo.learning_patterns.find(
        {**visible, "source_incidents.0": {"$exists": True}},
        {"name": 1, "pattern_type": 1, "source_incidents": 1, "frequency": 1, "is_validated": 1},
    ).sort([("confidence_score", -1), ("_id", 1)]).limit(MAX_PATTERNS).to_list(None)
    ids = sorted({i for p in patterns for i in p.get("source_incidents") or [] if isinstance(i, str)})
    detected = {d["_id"]: d["detected_at"] async for d in bk.mongo.incidents.find(
        {"_id": {"$in": ids}, **visible, **w.incident_cut(), "detected_at": w.range()}, {"detected_at": 1})}
    out = []
    for p in patterns:
        times = [detected[i] for i in p.get("source_incidents") or [] if i in detected]
        earlier = sum(1 for t in times if t < w.middle)
        recent = len(times) - earlier
        if recent > earlier:
            out.append({"id": p["_id"], "name": p.get("name") or "", "pattern_type": p.get("pattern_type"),
                        "is_validated": bool(p.get("is_validated")), "earlier": earlier, "recent": recent})
    out.sort(key=lambda x: (-(x["recent"] - x["earlier"]), -x["recent"], x["name"]))
    return out[:RISING_TOP]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _figures(inc: list[dict], due: list[dict], ttp: list[float], items: list[dict], usage: list[dict],
             generated: list[dict], rated: list[dict]) -> dict[str, Any]:
    """One set of figures from the week buckets it covers (one week, or all of them)."""
    severity = {s.value: 0 for s in Severity}
    for b in inc:
        for k, n in b["severity"].items():
            if k in severity:
                severity[k] += n
    detected_n = sum(b["detected"] for b in inc)
    resolved_n = sum(b.get("resolved", 0) for b in inc)
    due_n, on_time = sum(d["due"] for d in due), sum(d["on_time"] for d in due)
    items_n, closed = sum(i["items"] for i in items), sum(i["closed"] for i in items)
    searches, zero = sum(u["searches"] for u in usage), sum(u["zero"] for u in usage)
    gen_n, applied = sum(g["n"] for g in generated), sum(g["applied"] for g in generated)
    rated_n = sum(r["n"] for r in rated)
    return {
        "incidents": sum(severity.values()), "incidents_by_severity": severity,
        "mean_time_to_detect": round(sum(b["detect_ms"] for b in inc) / detected_n / 1000) if detected_n else None,
        "mean_time_to_resolve": round(sum(b.get("resolve_ms", 0) for b in inc) / resolved_n / 1000)
        if resolved_n else None,
        "incidents_resolved": resolved_n,
        "postmortems_due": due_n, "postmortems_published_on_time": on_time,
        "postmortem_completion_rate": _rate(on_time, due_n),
        "postmortems_published": len(ttp),
        "median_time_to_publish": round(statistics.median(ttp) / 1000) if ttp else None,
        "action_items": items_n, "action_items_closed": closed, "action_item_closure_rate": _rate(closed, items_n),
        "kb_views": sum(u["views"] for u in usage), "kb_searches": searches, "kb_zero_result_searches": zero,
        "kb_zero_result_rate": _rate(zero, searches),
        "recommendations_generated": gen_n, "recommendations_applied": applied,
        "recommendation_acceptance_rate": _rate(applied, gen_n),
        "effectiveness_ratings": rated_n,
        "mean_effectiveness_rating": round(sum(r["sum"] for r in rated) / rated_n, 2) if rated_n else None,
    }


# The request's parameters: REST's query string and GraphQL's arguments (one declaration, one set of rules)
ARGS = (Param("weeks", int, "How many weeks, the current one last", default=12, low=1, high=MAX_WEEKS),
        Param("team", str, "Only this team: incidents and postmortems naming it in `affected_teams`, and the "
                           "knowledge-base usage of its members", max_length=100),
        Param("namespace", str, "Only this namespace's incidents, and their postmortems and recommendations",
              max_length=100))


async def kpis(bk: Backends, *, user: User, weeks: int = 12, team: str | None = None,
               namespace: str | None = None, fresh: bool = False) -> dict[str, Any]:
    """The KPIs over the last `weeks` weeks (1-104), overall and per week, over what `user` may see (an answer
    computed in the last CACHE_SECONDS for the same view, unless `fresh`)."""
    key = (tuple(user.clearance.visible()), repr(usage_scope(user)), weeks, team or None, namespace or None)
    if not fresh and (hit := _cache.get(key)) is not None and hit[0] > time.monotonic():
        return hit[1]
    w = Window(weeks=weeks, team=team, namespace=namespace)
    visible = classification.mongo_filter(user)
    await w.resolve_cut(bk)
    # the collections are read at once: MongoDB runs the aggregations side by side
    inc, pms, recs, usage, rising = await asyncio.gather(
        _incidents(bk, w, visible), _postmortems(bk, w, visible), _recommendations(bk, w, visible),
        _usage(bk, w, user), rising_patterns(bk, w, visible))

    def bucket(weeks_: list[datetime]) -> dict[str, Any]:
        return _figures([inc[k] for k in weeks_ if k in inc], [pms["due"][k] for k in weeks_ if k in pms["due"]],
                        [ms for k in weeks_ for ms in pms["published"].get(k, [])],
                        [pms["items"][k] for k in weeks_ if k in pms["items"]],
                        [usage[k] for k in weeks_ if k in usage],
                        [recs["generated"][k] for k in weeks_ if k in recs["generated"]],
                        [recs["rated"][k] for k in weeks_ if k in recs["rated"]])

    out = {"weeks": weeks, "since": isoz(w.since), "until": isoz(w.until), "team": w.team, "namespace": w.namespace,
           "overall": {**bucket(w.weeks), "overdue_action_items": pms["overdue"]},
           "per_week": [{"week_start": isoz(k), **bucket([k])} for k in w.weeks], "rising_patterns": rising}
    if len(_cache) >= CACHE_MAX:
        _cache.clear()
    _cache[key] = (time.monotonic() + CACHE_SECONDS, out)
    return out

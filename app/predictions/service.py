"""Predictions for an incident in flight: its likely root-cause categories, how long it will likely take to
resolve, what that rests on, and how sure it is.

Computed on request from what the incident says now, so a new event or a root cause learned changes the next
answer (nothing is stored that could go stale):

- **Look-alikes**: the resolved (or closed) incidents the caller may see that the shared hybrid similarity
  (app/incidents/similarity.py) ranks closest, at least `MIN_SCORE`, at most `K`. The incident's own category is
  left out of the comparison: it is what is predicted, and a reporter's first guess of the area.
- **Root-cause categories**: the look-alikes' categories, each weighted by its score to the power `GAMMA`,
  shrunk toward the categories' base rates among resolved incidents with strength `ALPHA`:
  p(c) = (Σ wᵢ·[cᵢ = c] + ALPHA·prior(c)) / (Σ wᵢ + ALPHA). With no look-alike it is the base rate alone, and
  says so. `ALPHA` and `GAMMA` were fitted on one half of the demo data (by log-loss) and the reliability is
  reported on the other half (bench/predictions_bench.py; docs/benchmarks.md).
- **Time to resolve** (p50, p90, seconds from detection): weighted quantiles of the look-alikes' detection-to-
  resolution times, with the source incidents of the learning patterns that match (a look-alike is one of their
  sources, or the incident shows their triggers) at half weight; none below `MIN_SAMPLES` samples. An incident
  open longer than their p90 is said to be an outlier among them.
- **Confidence**: LOW while no root cause is recorded — measured on held-out incidents, look-alikes found from
  symptoms alone (title, first events) name the category no better than the base rates do, while once the
  cause is known they do (top-1 0.29 vs 0.31, then 0.47 vs 0.31); LOW too below `MIN_LOOK_ALIKES`
  look-alikes or when the most likely category is under 0.4; HIGH from 8 look-alikes with one at 0.7 or more;
  MEDIUM otherwise — with a sentence saying why.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

from app import classification
from app.backends import Backends
from app.incidents import service as incidents
from app.incidents import similarity
from app.patterns import triggers as trigger_rule
from app.timefmt import as_utc, isoz, utcnow
from app.users.models import User

K = 15
MIN_SCORE = 0.15     # fitted with ALPHA and GAMMA: bench/predictions_bench.py (docs/benchmarks.md)
ALPHA = 2.0
GAMMA = 1.0
TOP_CAUSES = 5
TOP_PATTERNS = 10
MIN_SAMPLES = 3
MIN_LOOK_ALIKES = 3
PATTERN_WEIGHT = 0.5
MAX_PATTERNS = 500   # the most confident patterns weighed for trigger matches
PRIOR_SECONDS = 300.0
RESOLVED = ("RESOLVED", "CLOSED")

_priors: dict[str, tuple[float, dict[str, float]]] = {}  # clearance -> (expires, category -> base rate)


async def category_prior(bk: Backends, user: User) -> dict[str, float]:
    """The categories' base rates among the resolved incidents this user may see (cached a few minutes per
    clearance: it moves slowly)."""
    key = user.clearance.value
    cached = _priors.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    rows = await (await bk.mongo.incidents.aggregate([
        {"$match": {**classification.mongo_filter(user), "status": {"$in": list(RESOLVED)},
                    "category": {"$nin": [None, ""]}}},
        {"$group": {"_id": "$category", "n": {"$sum": 1}}}])).to_list(None)
    total = sum(r["n"] for r in rows)
    prior = {r["_id"]: r["n"] / total for r in rows} if total else {}
    _priors[key] = (time.monotonic() + PRIOR_SECONDS, prior)
    return prior


def distribution(look_alikes: list[tuple[str, float]], prior: Mapping[str, float], *, alpha: float = ALPHA,
                 gamma: float = GAMMA) -> dict[str, float]:
    """p(category) from (category, score) look-alikes and the base rates (see the module docstring)."""
    weights: dict[str, float] = {}
    for category, score in look_alikes:
        if category:
            weights[category] = weights.get(category, 0.0) + score ** gamma
    mass = sum(weights.values())
    cats = set(prior) | set(weights)
    if not cats:
        return {}
    base = prior or {c: 1 / len(cats) for c in cats}
    return {c: (weights.get(c, 0.0) + alpha * base.get(c, 0.0)) / (mass + alpha) for c in cats}


def weighted_quantile(samples: list[tuple[float, float]], q: float) -> float:
    """The q-quantile of (value, weight) samples (the smallest value whose cumulative weight reaches q)."""
    ordered = sorted(samples)
    total = sum(w for _, w in ordered)
    run = 0.0
    for value, weight in ordered:
        run += weight
        if run >= q * total - 1e-9:
            return value
    return ordered[-1][0]


def duration(doc: Mapping[str, Any]) -> float | None:
    """Seconds from detection to resolution (None when either is missing or out of order)."""
    start, end = doc.get("detected_at"), doc.get("resolved_at")
    if start is None or end is None:
        return None
    seconds = (as_utc(end) - as_utc(start)).total_seconds()
    return seconds if seconds >= 0 else None


async def _patterns(bk: Backends, incident: Mapping[str, Any], look_alike_ids: list[str],
                    user: User) -> list[dict[str, Any]]:
    """The learning patterns the user may see that match: a look-alike among their sources, or their triggers
    shown by the incident."""
    visible = classification.mongo_filter(user)
    by_source = await bk.mongo.learning_patterns.find(
        {**visible, "source_incidents": {"$in": look_alike_ids}},
        {"name": 1, "pattern_type": 1, "source_incidents": 1, "triggers": 1, "confidence_score": 1},
    ).limit(50).to_list(None) if look_alike_ids else []
    text = trigger_rule.incident_text({**incident, "category": ""})
    out = [{**p, "matched_by": "look-alike among its sources"} for p in by_source]
    seen = {p["_id"] for p in by_source}
    async for p in bk.mongo.learning_patterns.find(
            {**visible, "triggers.0": {"$exists": True}},
            {"name": 1, "pattern_type": 1, "source_incidents": 1, "triggers": 1, "confidence_score": 1},
    ).sort([("confidence_score", -1), ("_id", 1)]).limit(MAX_PATTERNS):
        if p["_id"] not in seen and trigger_rule.matched(p, text)[1]:
            out.append({**p, "matched_by": "its triggers"})
    return out


SYMPTOMS_ONLY = ("Symptoms only: until a root cause is recorded, the categories of look-alikes found from symptoms "
                 "have done no better than the base rates on held-out incidents. Record the cause as soon as it "
                 "is known; the prediction follows it.")


def _span(seconds: float) -> str:
    """A duration as people say it: 40 min, 5.5 h, 3.0 days."""
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 2 * 86400 else f"{seconds / 86400:.1f} days"


def _confidence(n: int, top: float, *, learned: bool) -> dict[str, Any]:
    if n and not learned:
        return {"level": "LOW", "look_alikes": n, "explanation": SYMPTOMS_ONLY}
    if n == 0:
        return {"level": "LOW", "look_alikes": 0,
                "explanation": "No resolved incident resembles this one: the categories are the base rates of all "
                               "resolved incidents, not evidence about this one."}
    if n < MIN_LOOK_ALIKES or top < 0.4:
        why = (f"only {n} resolved look-alike{'s' if n != 1 else ''}" if n < MIN_LOOK_ALIKES
               else f"the look-alikes disagree (the most likely category is at {top:.0%})")
        return {"level": "LOW", "look_alikes": n, "explanation": f"A hint, not a finding: {why}."}
    if n >= 8 and top >= 0.7:
        return {"level": "HIGH", "look_alikes": n,
                "explanation": f"{n} resolved look-alikes, most of them of one category ({top:.0%})."}
    return {"level": "MEDIUM", "look_alikes": n,
            "explanation": f"{n} resolved look-alikes; the most likely category is at {top:.0%}."}


async def look_alikes(bk: Backends, incident: Mapping[str, Any], user: User) -> list[similarity.Match]:
    """The resolved incidents the user may see most like `incident`, its own category left out, best first."""
    probe = {**incident, "category": ""}
    return [m for m in await similarity.similar(bk, probe, user=user, limit=K, statuses=RESOLVED)
            if m.score >= MIN_SCORE]


async def predict(bk: Backends, *, name: str, user: User) -> dict[str, Any]:
    """The prediction for incident `name` (a 404 when the user may not see it)."""
    incident = await incidents.get_incident(bk, name=name, user=user)
    matches = await look_alikes(bk, incident, user)
    prior = await category_prior(bk, user)
    probs = distribution([(m.doc.get("category") or "", m.score) for m in matches], prior)
    causes = sorted(probs.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CAUSES]
    votes: dict[str, int] = {}
    for m in matches:
        votes[m.doc.get("category") or ""] = votes.get(m.doc.get("category") or "", 0) + 1

    patterns = await _patterns(bk, incident, [m.doc["_id"] for m in matches], user)
    samples = [(d, m.score) for m in matches if (d := duration(m.doc)) is not None]
    own = {m.doc["_id"] for m in matches}
    extra_ids = sorted({i for p in patterns for i in p.get("source_incidents") or []
                        if isinstance(i, str) and i not in own and i != incident["_id"]})[:500]
    if extra_ids:
        async for d in bk.mongo.incidents.find({"_id": {"$in": extra_ids}, **classification.mongo_filter(user),
                                                "status": {"$in": list(RESOLVED)}},
                                               {"detected_at": 1, "resolved_at": 1}):
            if (seconds := duration(d)) is not None:
                samples.append((seconds, PATTERN_WEIGHT))
    enough = len(samples) >= MIN_SAMPLES
    elapsed = (utcnow() - as_utc(incident["detected_at"])).total_seconds() if incident.get("detected_at") else None
    p50 = round(weighted_quantile(samples, 0.5)) if enough else None
    p90 = round(weighted_quantile(samples, 0.9)) if enough else None
    if not enough:
        ttr_note = (f"Too few resolved look-alikes with a resolution time ({len(samples)}; at least {MIN_SAMPLES} "
                    f"are needed) to say.")
    elif elapsed is not None and p90 is not None and elapsed > p90 and incident.get("status") not in RESOLVED:
        ttr_note = (f"Open for {_span(elapsed)}, longer than 9 in 10 of its look-alikes took ({_span(p90)}): it is "
                    f"an outlier among them, so these figures say little about when it will end.")
    else:
        ttr_note = None
    return {
        "incident": incident["name"], "status": incident.get("status"), "generated_at": isoz(utcnow()),
        "reported_category": incident.get("category") or None,
        # 4 decimals rounded down, so the probabilities shown never add up to more than 1
        "likely_root_causes": [{"category": c, "probability": math.floor(p * 1e4) / 1e4, "look_alikes": votes.get(c, 0)}
                               for c, p in causes],
        "time_to_resolve": {
            "p50": p50, "p90": p90, "samples": len(samples),
            "elapsed": round(elapsed) if elapsed is not None else None, "explanation": ttr_note},
        "based_on": {
            "incidents": [{"name": m.doc.get("name"), "title": m.doc.get("title") or "",
                           "category": m.doc.get("category") or None, "score": round(m.score, 4),
                           "time_to_resolve": round(d) if (d := duration(m.doc)) is not None else None}
                          for m in matches],
            "patterns": [{"id": p["_id"], "name": p.get("name") or "", "pattern_type": p.get("pattern_type"),
                          "matched_by": p["matched_by"]} for p in patterns[:TOP_PATTERNS]]},
        "confidence": _confidence(len(matches), causes[0][1] if causes else 0.0,
                                  learned=bool((incident.get("root_cause") or "").strip())),
    }

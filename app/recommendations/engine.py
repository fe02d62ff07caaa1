"""Recommendations from evidence (pure: no I/O): each one says what matched, how much, and why.

The service (app/recommendations/service.py) gathers the evidence — similar incidents scored by the shared
similarity (app/incidents/similarity.py), their postmortems, matching articles, the people involved, and
the feedback earlier recommendations received — and these functions turn it into recommendation
documents: `title`, `description`, `similarity_score` (how alike), `confidence_score` (how likely it
helps, calibrated, see `calibrate`), `reasoning` (plain words a person can check), `matching_factors`
(`[{factor, weight, value, detail}]`, the signals and their weights) and the type's own fields.

Feedback: a target (an article, the incident whose fix is suggested, an expert) rated before moves its
confidence by `FEEDBACK_WEIGHT * (mean rating - 3) / 2`, scaled by how many ratings back it
(`n / (n + FEEDBACK_PRIOR)`): one that keeps helping rises, one that keeps failing sinks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from app.patterns import triggers as trigger_rule
from app.recommendations.models import RecommendationType as T

MODEL_VERSION = "hybrid-1"
TITLE_MAX = 200
FEEDBACK_WEIGHT = 0.2
FEEDBACK_PRIOR = 3
RESOLVED_WITH_FIX_BONUS = 0.05  # a similar incident whose fix is known is worth more to the responder
MAX_ACTIONS = 8
# Logistic calibration of a raw score into the probability the recommendation is relevant. The default is
# the fit on the public dataset (bench/similarity_quality.py: a similar incident sharing a root-cause class,
# among the hybrid's top 10; ECE 0.131 with the earlier a=6, b=-3, 0.017 out of fold with this). It is
# nearly flat because within a top 10 the score barely separates same-cause incidents (AUC 0.54): an honest
# prior, refitted per type from ratings (app/recommendations/calibration.py).
DEFAULT_CALIBRATION = {"a": 1.0, "b": -0.6}


@dataclass
class Similar:
    """One similar past incident and how it matched (from app/incidents/similarity.py)."""

    doc: dict[str, Any]
    score: float  # fused, 0-1
    factors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Feedback:
    mean: float
    count: int


def calibrate(raw: float, params: Mapping[str, float] | None = None) -> float:
    p = params or DEFAULT_CALIBRATION
    return round(1.0 / (1.0 + math.exp(-(p["a"] * raw + p["b"]))), 4)


def feedback_shift(fb: Feedback | None) -> float:
    if fb is None or fb.count == 0:
        return 0.0
    return FEEDBACK_WEIGHT * (fb.mean - 3.0) / 2.0 * fb.count / (fb.count + FEEDBACK_PRIOR)


def _clip(x: float) -> float:
    return round(min(1.0, max(0.0, x)), 4)


def _title(prefix: str, text: str) -> str:
    return f"{prefix}: {text}"[:TITLE_MAX]


def _first_sentence(text: str, limit: int = 300) -> str:
    text = " ".join((text or "").split())
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    out = m.group(1) if m else text
    return out if len(out) <= limit else out[:limit].rsplit(" ", 1)[0] + "…"


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} days"


def _resolution_time(doc: Mapping[str, Any]) -> timedelta | None:
    start, end = doc.get("detected_at"), doc.get("resolved_at")
    if isinstance(start, datetime) and isinstance(end, datetime) and end >= start:
        return end - start
    return None


def _with_feedback(raw: float, fb: Feedback | None, factors: list[dict[str, Any]],
                   params: Mapping[str, float] | None) -> float:
    shift = feedback_shift(fb)
    if fb is not None and fb.count:
        factors.append({"factor": "feedback", "weight": FEEDBACK_WEIGHT, "value": round(shift, 4),
                        "detail": f"rated {fb.mean:.1f}/5 by {fb.count} responder(s) before"})
    return _clip(calibrate(raw, params) + shift)


def similar_incident(s: Similar, *, fb: Feedback | None = None, params=None) -> dict[str, Any]:
    doc = s.doc
    fixed = bool((doc.get("resolution") or "").strip())
    factors = list(s.factors)
    raw = s.score + (RESOLVED_WITH_FIX_BONUS if fixed else 0.0)
    if fixed:
        factors.append({"factor": "known_fix", "weight": RESOLVED_WITH_FIX_BONUS, "value": 1.0,
                        "detail": "resolved, with its fix recorded"})
    matched = ", ".join(f["detail"] for f in s.factors if f.get("value") and f.get("detail")) or "their text"
    reasoning = (f"{doc.get('name')} ({doc.get('status')}, {doc.get('severity')}) matches on {matched}."
                 + (f" It was resolved: {_first_sentence(doc['resolution'])}" if fixed else "")
                 + (f" Root cause: {_first_sentence(doc['root_cause'])}" if (doc.get("root_cause") or "").strip()
                    else ""))
    return {"recommendation_type": T.SIMILAR_INCIDENT.value, "target": doc["_id"], "related_incident": doc["_id"],
            "title": _title("Similar Incident", doc.get("title") or doc.get("name") or ""),
            "description": _first_sentence(doc.get("description") or doc.get("title") or "", 1000),
            "similarity_score": _clip(s.score), "confidence_score": _with_feedback(raw, fb, factors, params),
            "raw_score": round(raw, 4), "reasoning": reasoning, "matching_factors": factors}


def solution(s: Similar, *, postmortem: Mapping[str, Any] | None = None, fb: Feedback | None = None,
             params=None) -> dict[str, Any] | None:
    """What fixed a similar incident: its resolution, its mitigation steps and its postmortem's action items."""
    doc = s.doc
    resolution = (doc.get("resolution") or "").strip()
    mitigations = [e.get("message") for e in sorted(doc.get("timeline") or [], key=lambda e: str(e.get("timestamp")))
                   if e.get("type") == "Mitigation" and e.get("message")]
    items = [i.get("title") for i in (postmortem or {}).get("action_items") or [] if isinstance(i, dict) and i.get("title")]
    actions = list(dict.fromkeys([a for a in [resolution, *mitigations, *items] if a]))[:MAX_ACTIONS]
    if not actions:
        return None
    took = _resolution_time(doc)
    factors = list(s.factors) + [{"factor": "fix_evidence", "weight": 0.0, "value": len(actions),
                                  "detail": "resolution, mitigation events and postmortem action items"}]
    reasoning = (f"{doc.get('name')} was similar (score {s.score:.2f}) and was resolved by: "
                 f"{_first_sentence(resolution) if resolution else actions[0]}"
                 + (f" It took {_duration(took)} from detection to resolution." if took else "")
                 + (f" Its postmortem lists {len(items)} action item(s)." if items else ""))
    return {"recommendation_type": T.SOLUTION.value, "target": doc["_id"], "related_incident": doc["_id"],
            "title": _title("Solution", _first_sentence(resolution or actions[0], 180)),
            "description": f"What resolved {doc.get('name')}: " + "; ".join(actions[:3]),
            "similarity_score": _clip(s.score), "confidence_score": _with_feedback(s.score, fb, factors, params),
            "raw_score": round(s.score, 4), "suggested_actions": actions,
            "expected_outcome": (f"{doc.get('name')} was resolved" + (f" within {_duration(took)}" if took else "")
                                 + " after these steps."),
            "time_to_implement": took.total_seconds() if took else None,
            "reasoning": reasoning, "matching_factors": factors}


def knowledge_article(article: Mapping[str, Any], relevance: float, *, fb: Feedback | None = None,
                      params=None) -> dict[str, Any]:
    factors = [{"factor": "article_relevance", "weight": 1.0, "value": round(relevance, 4),
                "detail": "the incident's text against the article (knowledge-base ranking)"}]
    kind = (article.get("article_type") or "").replace("_", " ").lower()
    reasoning = (f"The {kind or 'article'} \"{article.get('title')}\" ranks {relevance:.2f} for this incident's "
                 f"title, services and symptoms" + (f" and covers {', '.join(article['related_services'][:3])}"
                                                    if article.get("related_services") else "") + ".")
    return {"recommendation_type": T.KNOWLEDGE_ARTICLE.value, "target": article["_id"],
            "knowledge_article": article["_id"], "title": _title("Knowledge Article", article.get("title") or ""),
            "description": _first_sentence(article.get("summary") or article.get("content") or "", 1000),
            "similarity_score": _clip(relevance), "confidence_score": _with_feedback(relevance, fb, factors, params),
            "raw_score": round(relevance, 4), "reasoning": reasoning, "matching_factors": factors}


def experts(similar: Iterable[Similar], people: Mapping[str, Mapping[str, Any]], *,
            maintainers: Mapping[str, list[str]] | None = None, feedback: Mapping[str, Feedback] | None = None,
            params=None) -> list[dict[str, Any]]:
    """People who resolved similar incidents (the resolver recorded on the Resolution event, else the
    assignee) or maintain matching articles, scored by the similarity of what they handled."""
    credit: dict[str, list[tuple[float, str]]] = {}
    for s in similar:
        who = [e.get("details", {}).get("actor") for e in s.doc.get("timeline") or []
               if e.get("type") == "Resolution" and isinstance(e.get("details"), dict)]
        who = [w for w in who if w] or ([s.doc["assignee"]] if s.doc.get("assignee") else [])
        for username in dict.fromkeys(who):
            credit.setdefault(username, []).append((s.score, f"resolved {s.doc.get('name')}"))
    for username, titles in (maintainers or {}).items():
        for title in titles:
            credit.setdefault(username, []).append((0.5, f"maintains \"{title}\""))
    out = []
    for username, items in credit.items():
        person = people.get(username)
        if person is None:
            continue
        items.sort(key=lambda x: -x[0])
        raw = 1 - math.prod(1 - min(0.95, sc) for sc, _ in items[:5])  # several matches add up, below 1
        factors = [{"factor": "handled_similar", "weight": 1.0, "value": round(sc, 4), "detail": what}
                   for sc, what in items[:5]]
        fb = (feedback or {}).get(person["_id"])
        out.append({"recommendation_type": T.EXPERT.value, "target": person["_id"],
                    "suggested_expert": person["_id"], "title": _title("Expert", username),
                    "description": f"{username}" + (f" ({person.get('team')})" if person.get("team") else "")
                                   + " has handled incidents like this one.",
                    "similarity_score": _clip(items[0][0]),
                    "confidence_score": _with_feedback(raw, fb, factors, params), "raw_score": round(raw, 4),
                    "reasoning": f"{username} " + "; ".join(what for _, what in items[:3]) + ".",
                    "matching_factors": factors})
    return out


def learning_pattern(pattern: Mapping[str, Any], incident_text: str, *, fb: Feedback | None = None,
                     params=None) -> dict[str, Any] | None:
    """A validated pattern whose triggers the incident shows: raw = the share of its triggers matched,
    times the pattern's own confidence (app/patterns/triggers.py decides what matches). None when no
    trigger matches."""
    triggers, matched = trigger_rule.matched(pattern, incident_text)
    if not matched:
        return None
    share = len(matched) / len(triggers)
    confidence = pattern.get("confidence_score") or 0.5
    raw = share * (0.5 + 0.5 * confidence)
    factors = [{"factor": "triggers", "weight": 1.0, "value": round(share, 4),
                "detail": "matched: " + "; ".join(matched[:5])},
               {"factor": "pattern_confidence", "weight": 0.5, "value": round(confidence, 4),
                "detail": f"seen {pattern.get('frequency') or 0} times, success rate {pattern.get('success_rate') or 0:.0%}"}]
    actions = [a for a in pattern.get("actions") or [] if isinstance(a, str)][:MAX_ACTIONS]
    reasoning = (f"This incident shows {len(matched)} of the {len(triggers)} signs of the validated pattern "
                 f"\"{pattern.get('name')}\" ({', '.join(matched[:3])}). It was seen {pattern.get('frequency') or 0} "
                 f"times; what worked: {'; '.join(actions[:3]) or 'no actions recorded'}.")
    return {"recommendation_type": T.LEARNING_PATTERN.value, "target": pattern["_id"],
            "title": _title("Learning Pattern", pattern.get("name") or ""),
            "description": (pattern.get("description") or "")[:1000], "similarity_score": _clip(share),
            "confidence_score": _with_feedback(raw, fb, factors, params), "raw_score": round(raw, 4),
            "suggested_actions": actions, "expected_outcome": "; ".join(pattern.get("outcomes") or [])[:1000] or None,
            "reasoning": reasoning, "matching_factors": factors, "learning_pattern": pattern["_id"]}

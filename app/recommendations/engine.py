"""Recommendations from evidence (pure: no I/O): each one says what matched, how much, and why.

The service (app/recommendations/service.py) gathers the evidence — similar incidents scored by the shared
similarity (app/incidents/similarity.py), their postmortems, matching articles, the people involved, and
the feedback earlier recommendations received — and these functions turn it into recommendation
documents: `title`, `description`, `similarity_score` (how alike), `confidence_score` (the probability a
responder rates it helpful: a logistic model per type over evidence features, `confidence`, refitted from
ratings by app/recommendations/calibration.py), `confidence_features` (stored for the refit), `reasoning`
(plain words a person can check), `matching_factors` (`[{factor, weight, value, detail}]`) and the type's
own fields. `sort_key` (a name, slug or username: derived from the data) breaks ties, never a random id.

Feedback: a target (an article, the incident whose fix is suggested, an expert) rated before gives the
feature `feedback` = (mean rating - 3) / 2 × n / (n + FEEDBACK_PRIOR): one that keeps helping rises, one
that keeps failing sinks, by the weight the ratings give it.

Only what was done counts as a fix (`fix_actions`, `is_known_fix`): the data's "does not say what
restored service" and the like are placeholders, never shown; status words are the incident's own.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from app.articles.models import GUIDE_TYPES
from app.patterns import triggers as trigger_rule
from app.recommendations.models import RecommendationType as T

MODEL_VERSION = "hybrid-4"
TITLE_MAX = 200
FEEDBACK_PRIOR = 3
MAX_ACTIONS = 8

# --- confidence: the probability a responder rates it helpful ----------------------------------------
# confidence = sigmoid(b + sum_f w_f * x_f) over evidence features x_f (each 0-1, feedback -1..1), one
# model per type. The defaults are a prior fitted on bench/feedback_loop.py's ratings with the near-duplicate
# and fix weights set so that a resolved near-duplicate with a known fix is VERY_HIGH and a weak text
# match LOW; each type is refitted from its ratings (app/recommendations/calibration.py), shrunk toward
# this prior. Every feature is stored with the recommendation (`confidence_features`) for the refit.
# `cause` (the candidate's recorded root cause against this incident's account, app/recommendations/meaning.py)
# and KNOWLEDGE_ARTICLE `semantic` (its title and summary against that account) start at weight 0: on
# bench/feedback_loop.py's held-out ratings neither separated helpful from unhelpful (`cause` alone AUC 0.45
# for SIMILAR_INCIDENT, article `semantic` alone 0.55; any weight >= 1 only worsened the ECE), so they move
# no confidence until a refit on ratings that carry them finds a weight.
# KNOWLEDGE_ARTICLE `focus` (evidence._focus: a runbook of this kind against a catch-all citing the same
# look-alikes) starts at 0 too: at 1.0 the prior's articles were over-confident on the feedback bench (seed 7:
# 0.598 helpful at a mean confidence of 0.752, ECE 0.163), and the demo's 42 article ratings do not pin it
# down (refitted from 0 it stays at -0.03, from 1.0 it goes to 1.30).
FEATURES = ("similarity", "semantic", "lexical", "services", "category", "fix", "near_duplicate", "cause",
            "lookalikes", "focus", "feedback")
DEFAULT_MODELS: dict[str, dict[str, Any]] = {
    T.SIMILAR_INCIDENT.value: {"b": -2.6, "w": {"similarity": 2.0, "semantic": 1.2, "lexical": 1.0, "services": 0.4,
                                                "category": 0.4, "fix": 0.3, "near_duplicate": 2.6,
                                                "cause": 0.0, "feedback": 2.5}},
    T.SOLUTION.value: {"b": -2.7, "w": {"similarity": 2.0, "semantic": 1.2, "lexical": 1.0, "services": 0.4,
                                        "category": 0.4, "fix": 0.4, "near_duplicate": 2.6, "cause": 0.0,
                                        "feedback": 2.5}},
    T.KNOWLEDGE_ARTICLE.value: {"b": -4.0, "w": {"similarity": 2.1, "semantic": 0.0, "lexical": 2.0,
                                                 "services": 1.8, "category": 0.2, "fix": 1.7,
                                                 "near_duplicate": 0.0, "lookalikes": 1.65, "focus": 0.0,
                                                 "feedback": 2.1}},
    T.EXPERT.value: {"b": -2.2, "w": {"similarity": 2.2, "semantic": 0.8, "lexical": 0.6, "services": 0.4,
                                      "category": 0.3, "fix": 0.5, "near_duplicate": 1.5, "cause": 0.0,
                                      "feedback": 2.5}},
    T.LEARNING_PATTERN.value: {"b": -2.0, "w": {"similarity": 3.0, "fix": 0.6, "feedback": 2.5}},
}
# A placeholder is not a fix: text the data marks as not known ("The public postmortem does not say what
# restored service: <url>"), a duplicate's closing note, or too few words to act on.
_PLACEHOLDER = re.compile(r"does not say|doesn't say|\bunknown\b|not (?:recorded|known|stated|documented)|"
                          r"no resolution|\bn/?a\b|\btbd\b|\bto be determined\b|closed as a duplicate|"
                          r"^public postmortem:|went away|resolved itself|self[- ]resolved|no action", re.I)
_URL = re.compile(r"https?://\S+")
_STATUS_WORDS = {"RESOLVED": "resolved", "CLOSED": "closed", "MITIGATED": "mitigated, not yet closed",
                 "INVESTIGATING": "still under investigation", "OPEN": "still open"}


@dataclass
class Similar:
    """One similar past incident and how it matched (from app/incidents/similarity.py)."""

    doc: dict[str, Any]
    score: float  # fused, 0-1
    factors: list[dict[str, Any]] = field(default_factory=list)
    signals: dict[str, float] = field(default_factory=dict)  # absolute evidence: semantic, lexical, services, category


@dataclass
class Lookalikes:
    """How far an article is what the most similar incidents used (a runbook their timelines record) or are
    linked to: `share` of the `of` most similar incidents, weighted by similarity; `names` those incidents."""

    share: float
    names: list[str]
    of: int
    focus: float = 0.0  # the share of the incidents it is written from that are among them (evidence._focus)

    def phrase(self, verb: str = "used in") -> str:
        shown = ", ".join(self.names[:3]) + (f" and {len(self.names) - 3} more" if len(self.names) > 3 else "")
        return f"{verb} {shown}: {len(self.names)} of the {self.of} most similar incidents"


@dataclass
class Feedback:
    mean: float
    count: int


def feedback_value(fb: Feedback | None) -> float:
    """-1..1: the mean rating's distance from neutral (3), shrunk by how many ratings back it."""
    if fb is None or fb.count == 0:
        return 0.0
    return (fb.mean - 3.0) / 2.0 * fb.count / (fb.count + FEEDBACK_PRIOR)


def model_for(rec_type: str, params: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return params if params and "w" in params else DEFAULT_MODELS[rec_type]


def confidence(features: Mapping[str, float], model: Mapping[str, Any]) -> float:
    z = model["b"] + sum(w * float(features.get(f, 0.0)) for f, w in model["w"].items())
    return round(1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z)))), 4)


def near_duplicate(signals: Mapping[str, float]) -> float:
    """0-1: how surely two incidents are the same problem — the same meaning or words (0.55 → 0, 0.8 → 1),
    on the same services (half as sure when their services differ)."""
    alike = max(signals.get("semantic", 0.0), signals.get("lexical", 0.0) * 1.15)
    base = min(1.0, max(0.0, (alike - 0.55) / 0.25))
    services = signals.get("services")
    return round(base * (1.0 if services is None or services > 0 else 0.5), 4)


def is_known_fix(text: str | None) -> bool:
    """Whether `text` states something that was done (not a placeholder or a non-answer)."""
    t = " ".join(_URL.sub("", text or "").split()).strip(" .:;-")
    return len(t.split()) >= 3 and not _PLACEHOLDER.search(t)


def status_words(doc: Mapping[str, Any]) -> str:
    status = str(doc.get("status") or "")
    return _STATUS_WORDS.get(status, status.lower() or "of unstated status")


def _clip(x: float) -> float:
    return round(min(1.0, max(0.0, x)), 4)


def _title(prefix: str, text: str) -> str:
    return f"{prefix}: {text}"[:TITLE_MAX]


def _first_sentence(text: str, limit: int = 300) -> str:
    text = " ".join(_URL.sub("", text or "").split())
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    out = m.group(1) if m else text
    out = out if len(out) <= limit else out[:limit].rsplit(" ", 1)[0] + "…"
    return out if not out or out[-1] in ".!?…" else out + "."


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


def _score(rec_type: str, features: dict[str, float], fb: Feedback | None, factors: list[dict[str, Any]],
           params: Mapping[str, Any] | None) -> tuple[float, dict[str, float]]:
    """The confidence from the features (feedback added), and the features as stored."""
    features = {k: round(float(v), 4) for k, v in features.items()}
    features["feedback"] = round(feedback_value(fb), 4)
    model = model_for(rec_type, params)
    if fb is not None and fb.count:
        factors.append({"factor": "feedback", "weight": model["w"].get("feedback", 0.0),
                        "value": features["feedback"],
                        "detail": f"rated {fb.mean:.1f}/5 by {fb.count} responder(s) before"})
    if features.get("near_duplicate", 0.0) > 0:
        factors.append({"factor": "near_duplicate", "weight": model["w"].get("near_duplicate", 0.0),
                        "value": features["near_duplicate"], "detail": "the same problem in other words"})
    return confidence(features, model), features


def _incident_features(s: Similar, fixed: bool) -> dict[str, float]:
    sig = s.signals
    return {"similarity": s.score, "semantic": sig.get("semantic", 0.0), "lexical": sig.get("lexical", 0.0),
            "services": sig.get("services") or 0.0, "category": sig.get("category", 0.0),
            "fix": float(fixed), "near_duplicate": near_duplicate(sig), "cause": sig.get("cause", 0.0)}


def _cause_factor(s: Similar, factors: list[dict[str, Any]], model: Mapping[str, Any]) -> None:
    if s.signals.get("cause"):
        factors.append({"factor": "cause", "weight": model["w"].get("cause", 0.0), "value": s.signals["cause"],
                        "detail": "its recorded root cause against what this incident says (meaning)"})


# action items that are about the paperwork of an incident (reviewing or writing its runbook), or that
# were given up, say nothing of how its failure is fixed or prevented
NOT_A_FIX_CATEGORIES = {"documentation"}
NOT_A_FIX_STATUSES = {"WONT_DO"}


def fixing_items(postmortem: Mapping[str, Any] | None) -> list[str]:
    """The titles of a postmortem's action items that fix or prevent its failure (not its documentation,
    not the abandoned ones)."""
    return [i.get("title") for i in (postmortem or {}).get("action_items") or [] if isinstance(i, dict)
            and str(i.get("category") or "").strip().lower() not in NOT_A_FIX_CATEGORIES
            and i.get("status") not in NOT_A_FIX_STATUSES]


def fix_actions(doc: Mapping[str, Any], postmortem: Mapping[str, Any] | None = None) -> list[str]:
    """What was done about an incident, as actions: its resolution, its Mitigation and Resolution events,
    its postmortem's action items that fix or prevent (`fixing_items`) — placeholders and duplicates left
    out, URLs stripped."""
    events = sorted((e for e in doc.get("timeline") or [] if isinstance(e, dict)),
                    key=lambda e: str(e.get("timestamp")))
    texts = [doc.get("resolution")]
    texts += [e.get("message") for e in events if e.get("type") in ("Mitigation", "Resolution")]
    texts += fixing_items(postmortem)
    out: dict[str, str] = {}
    for t in texts:
        if not is_known_fix(t):
            continue
        clean = " ".join(_URL.sub("", t).split()).strip()
        clean = clean if clean[-1] in ".!?" else clean + "."
        out.setdefault(clean.lower().rstrip("."), clean[:500])
    return list(out.values())[:MAX_ACTIONS]


def similar_incident(s: Similar, *, fb: Feedback | None = None, params=None) -> dict[str, Any]:
    doc = s.doc
    actions = fix_actions(doc)
    fixed = bool(actions)
    factors = list(s.factors)
    if fixed:
        factors.append({"factor": "known_fix", "weight": model_for(T.SIMILAR_INCIDENT.value, params)["w"].get("fix", 0),
                        "value": 1.0, "detail": f"{status_words(doc)}, with what was done recorded"})
    _cause_factor(s, factors, model_for(T.SIMILAR_INCIDENT.value, params))
    conf, features = _score(T.SIMILAR_INCIDENT.value, _incident_features(s, fixed), fb, factors, params)
    matched = ", ".join(f["detail"] for f in s.factors if f.get("value") and f.get("detail")) or "their text"
    cause = (doc.get("root_cause") or "").strip()
    reasoning = (f"{doc.get('name')} ({status_words(doc)}, {doc.get('severity')}) matches on {matched}."
                 + (f" Root cause: {_first_sentence(cause)}" if is_known_fix(cause) else "")
                 + (f" What was done: {actions[0]}" if fixed else " No fix is recorded for it."))
    return {"recommendation_type": T.SIMILAR_INCIDENT.value, "target": doc["_id"], "related_incident": doc["_id"],
            "sort_key": str(doc.get("name") or doc["_id"]),
            "title": _title("Similar Incident", f"{doc.get('name')}: {doc.get('title') or ''}"),
            "description": _first_sentence(doc.get("description") or doc.get("title") or "", 1000),
            "similarity_score": _clip(s.score), "confidence_score": conf, "confidence_features": features,
            "raw_score": round(s.score, 4), "reasoning": reasoning, "matching_factors": factors}


def solution(s: Similar, *, postmortem: Mapping[str, Any] | None = None, fb: Feedback | None = None,
             params=None) -> dict[str, Any] | None:
    """What was done in a similar incident (`fix_actions`), naming it; None when no fix is known."""
    doc = s.doc
    actions = fix_actions(doc, postmortem)
    if not actions:
        return None
    items = [t for t in fixing_items(postmortem) if is_known_fix(t)]
    took = _resolution_time(doc) if doc.get("status") in ("RESOLVED", "CLOSED") else None
    factors = list(s.factors) + [{"factor": "fix_evidence", "weight": 0.0, "value": len(actions),
                                  "detail": "resolution, fix events and postmortem action items"}]
    _cause_factor(s, factors, model_for(T.SOLUTION.value, params))
    conf, features = _score(T.SOLUTION.value, _incident_features(s, True), fb, factors, params)
    name, state = doc.get("name"), status_words(doc)
    reasoning = (f"{name} ({state}) is similar (score {s.score:.2f}); what was done there: {actions[0]}"
                 + (f" It took {_duration(took)} from detection to resolution." if took else "")
                 + (f" Its postmortem lists {len(items)} action item(s)." if items else ""))
    return {"recommendation_type": T.SOLUTION.value, "target": doc["_id"], "related_incident": doc["_id"],
            "sort_key": str(name or doc["_id"]),
            "title": _title("Solution", f"{_first_sentence(actions[0], 150)} (as in {name})"),
            "description": f"In {name} ({state}): " + " ".join(actions[:3]),
            "similarity_score": _clip(s.score), "confidence_score": conf, "confidence_features": features,
            "raw_score": round(s.score, 4), "suggested_actions": actions,
            "expected_outcome": (f"{name} was {state}" + (f" within {_duration(took)}" if took else "")
                                 + " after these steps."),
            "time_to_implement": took.total_seconds() if took else None,
            "reasoning": reasoning, "matching_factors": factors}


def knowledge_article(article: Mapping[str, Any], relevance: float, *, signals: Mapping[str, float] | None = None,
                      used: Lookalikes | None = None, fb: Feedback | None = None, params=None) -> dict[str, Any]:
    """An article the incident's text ranks (`relevance`, 0 when only `used` found it); `signals`: `lexical`
    (how many of the incident's signs its steps mention), `semantic`, `services`, `category`; `used`: how far
    the most similar incidents used it. Runbooks and troubleshooting guides count as a fix."""
    sig = dict(signals or {})
    guide = (article.get("article_type") or "") in GUIDE_TYPES
    factors = [{"factor": "article_relevance", "weight": 1.0, "value": round(relevance, 4),
                "detail": "the incident's text against the article (knowledge-base ranking)"}]
    if used is not None:
        factors.append({"factor": "used_in_similar", "weight": model_for(T.KNOWLEDGE_ARTICLE.value, params)["w"].get(
            "lookalikes", 0.0), "value": used.share, "detail": used.phrase() + " (share weighted by similarity)"})
        factors.append({"factor": "article_focus", "weight": model_for(T.KNOWLEDGE_ARTICLE.value, params)["w"].get(
            "focus", 0.0), "value": used.focus, "detail": "how much of what it is written from is incidents like this "
                                                         "one (its linked incidents among the most similar, weighted)"})
    if sig.get("semantic"):
        factors.append({"factor": "semantic", "weight": model_for(T.KNOWLEDGE_ARTICLE.value, params)["w"].get("semantic", 0.0),
                        "value": round(sig["semantic"], 4),
                        "detail": "what this incident says against the article's title and summary (meaning)"})
    if sig.get("lexical"):
        factors.append({"factor": "signs_matched", "weight": 1.0, "value": round(sig["lexical"], 4),
                        "detail": "the incident's signs found in the article's steps"})
    features = {"similarity": relevance, "semantic": sig.get("semantic", 0.0), "lexical": sig.get("lexical", 0.0),
                "services": sig.get("services") or 0.0, "category": sig.get("category", 0.0), "fix": float(guide),
                "lookalikes": used.share if used is not None else 0.0, "focus": used.focus if used is not None else 0.0}
    conf, features = _score(T.KNOWLEDGE_ARTICLE.value, features, fb, factors, params)
    kind = (article.get("article_type") or "").replace("_", " ").lower()
    found = (f"ranks {relevance:.2f} for this incident's title, services and symptoms" if relevance > 0 else "")
    if used is not None:
        found = " and ".join(x for x in [used.phrase("was used in" if guide else "is about"),
                                         found] if x)
    reasoning = (f"The {kind or 'article'} \"{article.get('title')}\" {found}"
                 + (f"; it covers {', '.join(article['related_services'][:3])}" if article.get("related_services") else "")
                 + (f"; {sig['lexical']:.0%} of the incident's signs appear in its steps" if sig.get("lexical") else "")
                 + ".")
    return {"recommendation_type": T.KNOWLEDGE_ARTICLE.value, "target": article["_id"],
            "knowledge_article": article["_id"], "sort_key": str(article.get("slug") or article.get("title") or ""),
            "title": _title("Knowledge Article", article.get("title") or ""),
            "description": _first_sentence(article.get("summary") or article.get("content") or "", 1000),
            "similarity_score": _clip(relevance), "confidence_score": conf, "confidence_features": features,
            "raw_score": round(relevance, 4), "reasoning": reasoning, "matching_factors": factors}


EXPERT_ROLES = {"resolver": "resolved", "assignee": "was assigned", "postmortem_owner": "owned the postmortem of",
                "postmortem_approver": "approved the postmortem of", "runbook_author": "wrote the runbook used in"}
RECENCY_DAYS = 365.0  # work a year old counts half


@dataclass
class Work:
    """One piece of work a person did on a similar incident."""

    username: str
    role: str  # a key of EXPERT_ROLES
    similar: Similar
    at: datetime | None = None


def experts(work: Iterable[Work], people: Mapping[str, Mapping[str, Any]], *, now: datetime | None = None,
            feedback: Mapping[str, Feedback] | None = None, params=None) -> list[dict[str, Any]]:
    """People (never service accounts: `people` holds only those to consider) who worked on similar
    incidents — resolved them, were assigned them, owned or approved their postmortem, wrote the runbook
    used — each piece of work weighted by the incident's similarity and how recent it is; several add up."""
    credit: dict[str, dict[str, tuple[float, Work]]] = {}
    for w in work:
        if w.username not in people:
            continue
        age = ((now - w.at).total_seconds() / 86400.0) if now and isinstance(w.at, datetime) else 0.0
        recency = 0.5 ** (max(0.0, age) / RECENCY_DAYS)
        weight = w.similar.score * (0.6 + 0.4 * recency) * (1.0 if w.role in ("resolver", "assignee") else 0.8)
        key = w.similar.doc["_id"]
        mine = credit.setdefault(w.username, {})
        if key not in mine or weight > mine[key][0]:
            mine[key] = (weight, w)
    out = []
    for username, by_incident in credit.items():
        person = people[username]
        items = sorted(by_incident.values(), key=lambda x: (-x[0], str(x[1].similar.doc.get("name"))))
        raw = 1 - math.prod(1 - min(0.95, sc) for sc, _ in items[:5])  # several add up, below 1
        best = items[0][1].similar
        factors = [{"factor": "worked_on_similar", "weight": 1.0, "value": round(sc, 4),
                    "detail": f"{EXPERT_ROLES[w.role]} {w.similar.doc.get('name')}"} for sc, w in items[:5]]
        by_role: dict[str, list[str]] = {}
        for _, w in items[:6]:
            by_role.setdefault(EXPERT_ROLES[w.role], []).append(str(w.similar.doc.get("name")))
        evidence = "; ".join(f"{verb} {' and '.join(names) if len(names) <= 2 else ', '.join(names[:-1]) + ' and ' + names[-1]}"
                             for verb, names in by_role.items())
        features = {**_incident_features(best, False), "similarity": raw,
                    "fix": float(any(w.role == "resolver" for _, w in items))}
        fb = (feedback or {}).get(person["_id"])
        conf, features = _score(T.EXPERT.value, features, fb, factors, params)
        out.append({"recommendation_type": T.EXPERT.value, "target": person["_id"],
                    "suggested_expert": person["_id"], "sort_key": username, "title": _title("Expert", username),
                    "description": f"{username}" + (f" ({person.get('team')})" if person.get("team") else "")
                                   + f" has worked on {len(items)} similar incident(s).",
                    "similarity_score": _clip(best.score), "confidence_score": conf, "confidence_features": features,
                    "raw_score": round(raw, 4), "reasoning": f"{username} {evidence}.", "matching_factors": factors})
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
    actions = [a for a in pattern.get("actions") or [] if isinstance(a, str)][:MAX_ACTIONS]
    factors = [{"factor": "triggers", "weight": 1.0, "value": round(share, 4),
                "detail": "matched: " + "; ".join(matched[:5])},
               {"factor": "pattern_confidence", "weight": 0.5, "value": round(confidence, 4),
                "detail": f"seen {pattern.get('frequency') or 0} times, success rate {pattern.get('success_rate') or 0:.0%}"}]
    conf, features = _score(T.LEARNING_PATTERN.value, {"similarity": raw, "fix": float(bool(actions))}, fb,
                            factors, params)
    reasoning = (f"This incident shows {len(matched)} of the {len(triggers)} signs of the validated pattern "
                 f"\"{pattern.get('name')}\" ({', '.join(matched[:3])}). It was seen {pattern.get('frequency') or 0} "
                 f"times; what worked: {'; '.join(actions[:3]) or 'no actions recorded'}.")
    return {"recommendation_type": T.LEARNING_PATTERN.value, "target": pattern["_id"],
            "title": _title("Learning Pattern", pattern.get("name") or ""),
            "description": (pattern.get("description") or "")[:1000], "similarity_score": _clip(share),
            "confidence_score": conf, "confidence_features": features, "raw_score": round(raw, 4),
            "sort_key": str(pattern.get("name") or pattern["_id"]), "suggested_actions": actions, "expected_outcome": "; ".join(pattern.get("outcomes") or [])[:1000] or None,
            "reasoning": reasoning, "matching_factors": factors, "learning_pattern": pattern["_id"]}

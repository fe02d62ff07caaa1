"""Mining learning patterns from resolved incidents: pure functions (numpy, no I/O, no database).

    vectors = dict(zip(ids, embeddings.embed([cause_text(i) for i in incidents])))
    fixes = dict(zip(ids, embeddings.embed([fix_text(i) for i in incidents])))   # optional
    cands = mine(incidents, vectors, min_frequency=3, postmortems=published, fix_vectors=fixes)
    for existing, cand in match(stored_patterns, cands): ...   # existing is None -> a new pattern

What is mined
-------------
Eligible incidents: status (when present) RESOLVED or CLOSED, a non-empty `cause_text`, a vector, and not
closed as a duplicate (`is_duplicate`: `duplicate_of` set, or a resolution matching `DUPLICATE_RE`): the
duplicate is the same incident as its canonical one and would count it twice in a pattern's frequency. Input order never matters: incidents are sorted by `_id` first, every tie is broken by
that order, and the output is sorted by (pattern_type, -frequency, key).

ROOT_CAUSE: agglomerative clustering of the eligible incidents on
    sim(i, j) = W_COS * cos(cause_i, cause_j) + W_CAT * [same category] + W_SVC * ochiai(services_i, services_j)
(ochiai = |A ∩ B| / sqrt(|A| |B|), 0 when either is empty). The similarity is an inner product of
feature rows f_i = [sqrt(W_COS) v_i, sqrt(W_CAT) onehot(category), sqrt(W_SVC) services/|services|], so
the average linkage between two clusters is exactly <sum_A, sum_B> / (|A| |B|), which lets the scalable
path below merge pre-built clusters without approximation. Linkage: AVERAGE (measured against complete
in bench/pattern_mining.py: complete fragments the dataset's groups and loses coverage at equal purity).
Merging stops when the best linkage is below CAUSE_CUT; clusters with >= min_frequency members are kept.

RESOLUTION: the same clustering on the fix side, over the incidents with a *recorded* resolution only
(`fix_text` non-empty: placeholders such as "the postmortem does not say" or "duplicate of" are not fixes,
`NO_FIX_RE`), cut at FIX_CUT. Vectors: `fix_vectors[id]` when given (embed `fix_text`), else a TF-IDF
vector of the fix text's words and phrases built here (no model needed). Cause vectors are never reused
for fixes: two incidents with the same cause were often fixed differently, and vice versa.

DETECTION: incidents whose detection lagged (detected_at >= DETECTION_LAG after the earliest timeline
event) or whose Detection event came from a person (`HUMAN_SOURCE_RE` over the event source, or a
`reporter` and no Detection event), grouped by category; groups >= min_frequency.

Scale: up to EXACT_MAX eligible incidents the clustering is exact (O(n^2) memory and time). Above it a
first pass of leader clustering (items in id order join their most similar leader when sim >= LEADER_CUT,
else become a leader; done in chunks with matrix products, O(n * leaders)) cuts the corpus into blocks; each
block is clustered exactly; then the resulting clusters of >= 2 members from all blocks are merged by the
same average linkage on their sums (exact, see above), so a cause split across two blocks comes together
again. Only singletons that landed in another cause's block can be missed (measured in the bench).

Per group
---------
- triggers: phrases (1-3 words, no stop word at either end) from the members' titles and Detection event
  messages that >= 2 members share (all members when there are 2), most members first, then TF-IDF;
  at most MAX_PHRASES, a phrase inside an already chosen one is skipped.
- actions: the same over `fix_text` (resolution + Mitigation event messages); when the members share no
  phrase, the first sentence of the recorded fix of the most central member that has one.
- name: the group's top distinctive phrases of its defining text (cause text, or fix text for RESOLUTION;
  trigger text for DETECTION) by TF-IDF against the whole eligible corpus (phrase shared by >= 2 members,
  score = share of members x idf), NAME_PHRASES of them joined by ", ", no word twice, led by the best
  phrase of 2+ words. Only informative phrases name a group (`informative`): not made only of the members'
  service or category words (a vendor's name says who, not what), held by the group in at least
  NAME_MIN_GROUP_SHARE of the corpus documents using it (a phrase common across the corpus, "outage",
  "network", "database", "network outage", does not tell this group from others: an IDF measured against
  the group's own count), and a single word only when at least that share of the members use it too (one
  word two of six members share does not name the six). When no shared phrase
  is informative: "<category>: <services>" (most common first), then the central member's title.
  description: the member count and categories, the phrases, and the most central member's own
  sentence. Nothing is invented: every content word comes from the members' text.
- outcomes: time to resolve (resolved_at - detected_at, else created_at) median and p90 over the members
  that have both, the recurrence (members per calendar month of detected_at, first and last month, mean
  per active month) and the recorded-resolution share.
- success_rate: share of members resolved (status RESOLVED/CLOSED or absent) with a recorded resolution.
- confidence_score: cohesion x n / (n + 2), cohesion = mean pairwise sim (the clustering's own similarity)
  over the members, clipped to [0, 1].
- key: pattern type + sha1 of the sorted member ids (stable for the same members); re-runs are recognised
  by `match` (member Jaccard >= MATCH_JACCARD, greedy best first), not by the key.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from app.patterns import wording
from app.patterns.clustering import CAUSE_CUT, EXACT_MAX, FIX_CUT, cluster, cohesion, features
from app.patterns.naming import NAME_PHRASES, Corpus, group_name, name_weights, tfidf, top_phrases
from app.patterns.wording import NO_FIX_RE, phrases

# --- thresholds ---------------------------------------------------------------------------------------
DETECTION_LAG = 15 * 60  # seconds between the earliest timeline event and detected_at that count as lag
MATCH_JACCARD = 0.5     # `match`: the same pattern when the member sets overlap this much
MAX_PHRASES = 5         # triggers / actions kept
SIZE_PRIOR = 2          # confidence = cohesion * n / (n + SIZE_PRIOR)
NO_ACTIONS_REASON = ("No fix or prevention recorded: none of the {n} incidents records what restored service or "
                     "prevents a recurrence (no resolution, Mitigation event or reviewed postmortem action item); "
                     "not offered for validation until one is recorded.")

RESOLVED = {"RESOLVED", "CLOSED"}
DUPLICATE_RE = re.compile(r"\bduplicate of\b", re.I)
HUMAN_SOURCE_RE = re.compile(r"customer|user|support|report|manual|human|twitter|social|email|phone|ticket|"
                             r"helpdesk|slack", re.I)
_CITED_RE = re.compile(r"(?:source|postmortem|post-mortem)\s*:\s*(https?://\S+)", re.I)
_ARCHIVE_RE = re.compile(r"^web\.archive\.org/web/\d+[a-z_]*/(?:https?://)?")

PatternKind = str  # "ROOT_CAUSE" | "RESOLUTION" | "DETECTION"


@dataclass(frozen=True)
class Candidate:
    key: str                          # "<TYPE>:<sha1 of sorted member ids, 16 hex>"
    pattern_type: str                 # PatternType value
    name: str
    description: str
    frequency: int                    # members
    success_rate: float
    confidence_score: float
    cohesion: float                   # mean pairwise similarity of the members
    triggers: tuple[str, ...]
    actions: tuple[str, ...]
    outcomes: tuple[str, ...]
    source_incidents: tuple[str, ...]  # sorted
    source_postmortems: tuple[str, ...]  # sorted
    ttr_median_seconds: float | None = None
    ttr_p90_seconds: float | None = None
    per_month: dict[str, int] = field(default_factory=dict)  # "YYYY-MM" -> members detected that month

    def content(self) -> dict[str, Any]:
        """The documented pattern fields (app.patterns.models.PatternContent)."""
        return {"name": self.name[:200], "pattern_type": self.pattern_type, "description": self.description,
                "triggers": list(self.triggers), "actions": list(self.actions), "outcomes": list(self.outcomes),
                "source_incidents": list(self.source_incidents),
                "source_postmortems": list(self.source_postmortems), "frequency": self.frequency,
                "success_rate": self.success_rate, "confidence_score": self.confidence_score}


# --- texts ----------------------------------------------------------------------------------------------

def _clean(s: Any) -> str:
    return wording.clean(s)


def _events(inc: dict, kind: str) -> list[dict]:
    return [e for e in inc.get("timeline") or [] if isinstance(e, dict) and _val(e.get("type")) == kind]


def _val(v: Any) -> Any:
    return getattr(v, "value", v)


def cause_text(inc: dict) -> str:
    """What the incident's cause is: its root cause, else its title (URLs removed)."""
    return _clean(inc.get("root_cause")) or _clean(inc.get("title"))


def recorded_fix(inc: dict) -> str:
    """The resolution when it states a fix ("" for a placeholder or a duplicate closure)."""
    res = _clean(inc.get("resolution"))
    return "" if not res or NO_FIX_RE.search(res) else res


def fix_text(inc: dict) -> str:
    """What fixed it: the recorded resolution and the Mitigation event messages ("" when none states a fix)."""
    parts = [recorded_fix(inc)] + [_clean(e.get("message")) for e in _events(inc, "Mitigation")]
    seen: list[str] = []
    for p in parts:
        if p and not NO_FIX_RE.search(p) and p not in seen:
            seen.append(p)
    return " ".join(p if p.endswith((".", "!", "?")) else p + "." for p in seen)


def trigger_text(inc: dict) -> str:
    """What opened it: the title and the Detection event messages."""
    parts = [_clean(inc.get("title"))] + [_clean(e.get("message")) for e in _events(inc, "Detection")]
    return " . ".join(dict.fromkeys(p for p in parts if p))


# --- features and clustering --------------------------------------------------------------------------















# --- describing a group ---------------------------------------------------------------------------------













def _first_sentence(text: str) -> str:
    s = wording.sentences(text)
    return wording.cut(s[0], 300, clause=False) if s else ""


def _when(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)
    if isinstance(v, str) and v:
        try:
            d = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return None
        return d if d.tzinfo else d.replace(tzinfo=timezone.utc)
    return None


def _duration(seconds: float) -> str:
    m = int(round(seconds / 60))
    if m < 60:
        return f"{m} min"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m:02d} min"
    return f"{h / 24:.1f} days"


def _quantile(xs: list[float], q: float) -> float:
    return float(np.quantile(np.array(xs), q, method="linear"))


def _is_resolved(inc: dict) -> bool:
    st = _val(inc.get("status"))
    return st is None or str(st) in RESOLVED


def _outcomes(members: list[dict], fixed_ids: set[str]) -> tuple[list[str], float | None, float | None, dict[str, int],
                                                                 float]:
    ttr = []
    for m in members:
        start, end = _when(m.get("detected_at")) or _when(m.get("created_at")), _when(m.get("resolved_at"))
        if start and end and end >= start:
            ttr.append((end - start).total_seconds())
    months = Counter(d.strftime("%Y-%m") for m in members
                     if (d := _when(m.get("detected_at")) or _when(m.get("created_at"))))
    fixed = sum(1 for m in members if _is_resolved(m) and str(m["_id"]) in fixed_ids)
    out: list[str] = []
    med = p90 = None
    if ttr:
        med, p90 = _quantile(ttr, 0.5), _quantile(ttr, 0.9)
        out.append(f"time to resolve: median {_duration(med)}, p90 {_duration(p90)} ({len(ttr)} of "
                   f"{len(members)} incidents)")
    if months:
        first, last = min(months), max(months)
        span = (int(last[:4]) - int(first[:4])) * 12 + int(last[5:]) - int(first[5:]) + 1
        busiest = max(sorted(months), key=lambda k: months[k])
        out.append(f"recurrence: {sum(months.values())} incidents in {len(months)} of {span} months "
                   f"({first} to {last}), {sum(months.values()) / span:.2f} per month; busiest {busiest} "
                   f"({months[busiest]})")
    out.append(f"recorded resolution: {fixed} of {len(members)} incidents")
    return out, med, p90, dict(sorted(months.items())), fixed / len(members)


@dataclass
class _Context:
    """What describing any group needs: the eligible incidents and the corpus-wide texts."""
    incs: list[dict]
    trig: list[set[str]]
    trig_corpus: Corpus
    statements: list[list[str]]         # per incident: its own and its twins' recorded fixes, then its
    fixed_ids: set[str]                 # reviewed postmortems' action items and lessons; those with a fix
    pm_by_incident: dict[str, list[str]]


def _describe(kind: str, idx: list[int], ctx: _Context, F: np.ndarray, defining: list[set[str]], corpus: Corpus,
              defining_text: Callable[[dict], str]) -> Candidate:
    incs = ctx.incs
    members = [incs[i] for i in idx]
    ids = sorted(str(m["_id"]) for m in members)
    Fm = F[idx]
    coh = cohesion(Fm)
    centre = Fm.sum(0)
    order = sorted(range(len(idx)), key=lambda k: (-float(Fm[k] @ centre), str(members[k]["_id"])))
    central = members[order[0]]
    top = top_phrases([defining[i] for i in idx], corpus, NAME_PHRASES, by_count_first=False)
    cats = Counter(str(m.get("category") or "") for m in members if m.get("category"))
    weights = name_weights([defining[i] for i in idx], corpus, members, cats)
    late = sum(1 for m in members if (d := detection_lag(m)) is not None and d >= DETECTION_LAG)
    name = group_name(kind, [defining_text(members[k]) for k in order], weights, members, cats, late=late)
    triggers = top_phrases([ctx.trig[i] for i in idx], ctx.trig_corpus, MAX_PHRASES, by_count_first=True)
    per_member = [ctx.statements[idx[k]] for k in order]
    actions = wording.shared_actions(per_member)
    recording = sum(1 for st in per_member if st)
    outcomes, med, p90, months, success = _outcomes(members, ctx.fixed_ids)
    example = _first_sentence(defining_text(central))
    n = len(members)
    desc = (f"{n} incidents"
            + (f" ({', '.join(f'{c} {k}' for c, k in sorted(cats.items(), key=lambda x: (-x[1], x[0])))})"
               if cats else "")
            + (f"; shared: {'; '.join(top)}." if top else ".")
            + (f" Example: {example}." if example else "")
            + (f" Fixes or preventions recorded by {recording} of {n} incidents." if actions else
               f" {NO_ACTIONS_REASON.format(n=n)}"))
    conf = max(0.0, min(1.0, coh)) * n / (n + SIZE_PRIOR)
    pms = sorted({p for i in ids for p in ctx.pm_by_incident.get(i, [])})
    key = f"{kind}:{hashlib.sha1(chr(10).join(ids).encode()).hexdigest()[:16]}"
    return Candidate(key=key, pattern_type=kind, name=name[:200], description=desc, frequency=n,
                     success_rate=round(success, 4), confidence_score=round(conf, 4), cohesion=round(coh, 4),
                     triggers=tuple(triggers), actions=tuple(actions), outcomes=tuple(outcomes),
                     source_incidents=tuple(ids), source_postmortems=tuple(pms), ttr_median_seconds=med,
                     ttr_p90_seconds=p90, per_month=months)


# --- mining ---------------------------------------------------------------------------------------------

def is_duplicate(inc: dict) -> bool:
    """Closed as a duplicate of another incident: `duplicate_of` set (the canonical incident's id), or a
    resolution saying so. Its canonical incident is the one that counts."""
    return bool(inc.get("duplicate_of")) or bool(DUPLICATE_RE.search(str(inc.get("resolution") or "")))


def cited_postmortem(inc: dict) -> str:
    """The public postmortem the incident cites (a timeline event's `details.url`, else a "Source: <url>" or
    "Postmortem: <url>" in its description), normalised: no scheme, "www." or web-archive prefix, no
    trailing punctuation or slash, lower case; "" when it cites none."""
    urls = [str((e.get("details") or {}).get("url") or "") for e in inc.get("timeline") or [] if isinstance(e, dict)
            and isinstance(e.get("details"), dict)]
    urls += _CITED_RE.findall(str(inc.get("description") or ""))
    for u in urls:
        u = re.split(r"[)\]\s>\"']", u.strip())[0].rstrip(".,;:/").lower()
        u = re.sub(r"^https?://", "", u)
        u = _ARCHIVE_RE.sub("", u)
        u = re.sub(r"^www\.", "", u).rstrip("/")
        if "/" in u:  # a page, not a bare site
            return u
    return ""


def canonical(incidents: Iterable[dict]) -> tuple[list[dict], dict[str, list[dict]]]:
    """Twins counted once: incidents closed as a duplicate (`is_duplicate`) are dropped, and of the incidents
    citing one public postmortem (`cited_postmortem`) only the earliest detected (then lowest `_id`) is kept.
    Returns (the kept incidents, by `_id`; kept id -> the twins it stands for, those citing its postmortem)."""
    kept: dict[str, dict] = {}
    for inc in incidents:
        if (i := str(inc.get("_id", ""))) and not is_duplicate(inc):
            kept[i] = inc
    by_url: dict[str, list[dict]] = defaultdict(list)
    for i in sorted(kept):
        if url := cited_postmortem(kept[i]):
            by_url[url].append(kept[i])
    twins: dict[str, list[dict]] = {}
    far = datetime.max.replace(tzinfo=timezone.utc)
    for group in by_url.values():
        if len(group) > 1:
            group.sort(key=lambda d: (_when(d.get("detected_at")) or far, str(d["_id"])))
            twins[str(group[0]["_id"])] = group[1:]
            for t in group[1:]:
                kept.pop(str(t["_id"]), None)
    return [kept[k] for k in sorted(kept)], twins


def eligible(incidents: Iterable[dict], vectors: dict[str, Any]) -> list[dict]:
    """The incidents mined (module docstring), sorted by id: resolved, with a cause and a vector, twins once."""
    kept, _ = canonical(i for i in incidents if str(i.get("_id", "")) in vectors and _is_resolved(i)
                        and cause_text(i))
    return kept


def detection_lag(inc: dict) -> float | None:
    """Seconds from the earliest timeline event to detected_at (None when either is unknown)."""
    times = [t for e in inc.get("timeline") or [] if (t := _when(e.get("timestamp")))]
    det = _when(inc.get("detected_at"))
    return (det - min(times)).total_seconds() if times and det else None


def human_detected(inc: dict) -> bool:
    det = _events(inc, "Detection")
    if det:
        return bool(HUMAN_SOURCE_RE.search(str(det[0].get("source") or "")))
    return bool(inc.get("reporter"))


def mine(incidents: list[dict], vectors: dict[str, np.ndarray], *, min_frequency: int = 3,
         postmortems: Sequence[dict] = (), fix_vectors: dict[str, np.ndarray] | None = None,
         cause_cut: float = CAUSE_CUT, fix_cut: float = FIX_CUT, linkage: str = "average",
         exact_max: int = EXACT_MAX, kinds: Iterable[str] = ("ROOT_CAUSE", "RESOLUTION", "DETECTION"),
         recent: Iterable[str] | None = None) -> list[Candidate]:
    """Pattern candidates from resolved incidents (module docstring). `vectors[_id]` embeds `cause_text`;
    `fix_vectors[_id]`, when given, embeds `fix_text`. `postmortems`: dicts with `_id` and `incident_id`,
    optionally `status`, `action_items` and `lessons_learned` (their statements become actions when the
    postmortem is reviewed: app/patterns/wording.py). `recent`: when given, only groups with at least one
    member among these ids are returned (the others are clustered as history)."""
    kinds = set(kinds)
    min_frequency = max(int(min_frequency), 2)
    resolved = [i for i in incidents if str(i.get("_id", "")) in vectors and _is_resolved(i) and cause_text(i)]
    incs, twins = canonical(resolved)
    if len(incs) < min_frequency:
        return []
    pm_by_incident: dict[str, list[str]] = defaultdict(list)
    pm_statements: dict[str, list[str]] = defaultdict(list)
    for pm in sorted(postmortems, key=lambda d: str(d.get("_id"))):
        if pm.get("incident_id") is not None and pm.get("_id") is not None:
            pm_by_incident[str(pm["incident_id"])].append(str(pm["_id"]))
            pm_statements[str(pm["incident_id"])] += wording.postmortem_statements(pm)
    statements, fixed_ids = [], set()
    for inc in incs:
        same = [inc, *twins.get(str(inc["_id"]), [])]
        own = list(dict.fromkeys(s for d in same for s in wording.incident_statements(d)))
        if own:
            fixed_ids.add(str(inc["_id"]))
        statements.append(list(dict.fromkeys(own + [s for d in same for s in pm_statements.get(str(d["_id"]), [])])))
    cause_p = [phrases(cause_text(i)) for i in incs]
    trig_p = [phrases(trigger_text(i)) for i in incs]
    fix_p = [phrases(fix_text(i)) for i in incs]
    cause_c, trig_c, fix_c = Corpus([]), Corpus([]), Corpus([])
    for c, ps in ((cause_c, cause_p), (trig_c, trig_p), (fix_c, fix_p)):
        c.docs, c.n = ps, len(ps)
        c.df = Counter(p for d in ps for p in d)
    ctx = _Context(incs, trig_p, trig_c, statements, fixed_ids, pm_by_incident)
    F = features(incs, [vectors[str(i["_id"])] for i in incs])
    recent_ids = None if recent is None else {str(r) for r in recent}
    out: list[Candidate] = []

    def keep(idx: list[int]) -> bool:
        return len(idx) >= min_frequency and (recent_ids is None or any(str(incs[k]["_id"]) in recent_ids
                                                                         for k in idx))

    if "ROOT_CAUSE" in kinds:
        for c in cluster(F, cause_cut, linkage=linkage, exact_max=exact_max):
            if keep(c):
                out.append(_describe("ROOT_CAUSE", c, ctx, F, cause_p, cause_c, cause_text))
    if "RESOLUTION" in kinds:
        fixed = [k for k, i in enumerate(incs) if fix_text(i)
                 and (fix_vectors is None or str(i["_id"]) in fix_vectors)]
        if len(fixed) >= min_frequency:
            sub = [incs[k] for k in fixed]
            if fix_vectors is not None:
                fv = [fix_vectors[str(i["_id"])] for i in sub]
            else:
                fv = list(tfidf([fix_text(i) for i in sub]))
            Fs = features(sub, fv)
            Ff = np.zeros((len(incs), Fs.shape[1]), np.float32)
            Ff[fixed] = Fs
            for c in cluster(Fs, fix_cut, linkage=linkage, exact_max=exact_max):
                if keep(g := [fixed[k] for k in c]):
                    out.append(_describe("RESOLUTION", g, ctx, Ff, fix_p, fix_c, fix_text))
    if "DETECTION" in kinds:
        by_cat: dict[str, list[int]] = defaultdict(list)
        for k, i in enumerate(incs):
            lag = detection_lag(i)
            if (lag is not None and lag >= DETECTION_LAG) or human_detected(i):
                by_cat[str(i.get("category") or "")].append(k)
        for cat in sorted(by_cat):
            if keep(by_cat[cat]):
                out.append(_describe("DETECTION", by_cat[cat], ctx, F, trig_p, trig_c, trigger_text))
    out.sort(key=lambda c: (c.pattern_type, -c.frequency, c.key))
    names = wording.unique_names([c.name for c in out], [_distinguish(c) for c in out])
    return [c if c.name == nm else replace(c, name=nm[:200]) for c, nm in zip(out, names)]


def _distinguish(c: Candidate) -> str:
    months = sorted(c.per_month)
    return f"{c.frequency} incidents, {months[0]} to {months[-1]}" if months else f"{c.frequency} incidents"


# --- re-runs --------------------------------------------------------------------------------------------

def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 0.0


def match(existing: Sequence[dict], candidates: Sequence[Candidate], *, threshold: float = MATCH_JACCARD,
          ) -> list[tuple[dict | None, Candidate]]:
    """Pair each candidate with the stored pattern (same pattern_type, `source_incidents` Jaccard >=
    threshold) it updates, greedy best first (ties: stored `_id`/`key`, then candidate key); None = new.
    Each stored pattern is used at most once. Returned in candidate order."""
    pairs = []
    for ei, e in enumerate(existing):
        et = str(_val(e.get("pattern_type")) or "")
        src = e.get("source_incidents") or []
        for ci, c in enumerate(candidates):
            if et == c.pattern_type and (j := jaccard(src, c.source_incidents)) >= threshold:
                pairs.append((-j, str(e.get("_id") or e.get("key") or ""), ei, c.key, ci))
    pairs.sort()
    used_e: set[int] = set()
    chosen: dict[int, dict] = {}
    for _, _, ei, _, ci in pairs:
        if ei in used_e or ci in chosen:
            continue
        used_e.add(ei)
        chosen[ci] = existing[ei]
    return [(chosen.get(ci), c) for ci, c in enumerate(candidates)]

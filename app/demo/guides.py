"""Knowledge-base articles assembled from the dataset: postmortem summaries, and runbooks,
troubleshooting guides, best practices, FAQs and catalogues per category or topic. Their facts are
the rows' own sentences (root causes, symptoms, what restored service), each cited with its
company, date and link; only headings and connecting words are the demo's."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime

from app.demo.facts import SEVERITY_RANK, TOPIC_LABELS, TOPICS, Fact
from app.demo.incidents import IN_FLIGHT
from app.demo.text import clip, slug_word, title

ARTICLES = "/api/knowledge/knowledge-articles"
MIN_TOPIC_GROUP = 2        # rows a topic needs for its own runbook inside a category ...
MIN_SPLIT_CATEGORY = 6     # ... in a category with at least this many rows (smaller ones get one runbook)
MIN_BEST_PRACTICE = 3      # rows a topic needs, across categories, for a best-practice article
DIFFICULTY_BY_SEVERITY = {"LOW": "BEGINNER", "MEDIUM": "INTERMEDIATE", "HIGH": "ADVANCED", "CRITICAL": "EXPERT"}
NO_FIX = "The public postmortem does not say what restored service."


@dataclass
class Group:
    category: str
    topic: str | None        # None: the whole (small) category
    facts: list[Fact]

    @property
    def label(self) -> str:
        return TOPIC_LABELS[self.topic] if self.topic else ""

    def name(self, kind: str) -> str:
        return f"{self.category} {kind}: {self.label}" if self.topic else f"{self.category} {kind}"

    @property
    def critical(self) -> bool:
        return any(f.severity == "CRITICAL" for f in self.facts)


def _newest_first(facts: list[Fact]) -> list[Fact]:
    return sorted(facts, key=lambda f: (f.day, f.id), reverse=True)


def known(facts: list[Fact], status: dict[str, str], before: datetime | None) -> list[Fact]:
    """What the runbooks, guides and best practices are written from: the resolved, non-duplicate
    incidents detected before `before` (when they were last revised; None: all of them)."""
    return [f for f in facts if not f.duplicate_of and status[f.id] not in IN_FLIGHT
            and (before is None or f.detected_at < before)]


def groups(facts: list[Fact], status: dict[str, str], before: datetime | None = None) -> list[Group]:
    """The incidents the guides know (`known`) by category, and by topic within large categories; topics
    with one incident share an 'other failure modes' group."""
    by_category: dict[str, list[Fact]] = defaultdict(list)
    for f in known(facts, status, before):
        by_category[f.category].append(f)
    out: list[Group] = []
    for category in sorted(by_category):
        members = by_category[category]
        if len(members) < MIN_SPLIT_CATEGORY:
            out.append(Group(category, None, _newest_first(members)))
            continue
        by_topic: dict[str, list[Fact]] = defaultdict(list)
        for f in members:
            by_topic[f.topic].append(f)
        rest: list[Fact] = []
        for key in [k for k, _, _ in TOPICS] + ["other"]:
            found = by_topic.get(key, [])
            if len(found) >= MIN_TOPIC_GROUP and key != "other":
                out.append(Group(category, key, _newest_first(found)))
            else:
                rest += found
        if rest:
            out.append(Group(category, "other", _newest_first(rest)))
    return out


def _link(key: str, text: str) -> str:
    """A link to another demo article by its key (rewritten to its slug when seeding)."""
    return f"[{text}]({ARTICLES}/{key}/)"


def _sources(facts: list[Fact], names: dict[str, str]) -> str:
    return "\n".join(f"- [{f.cite}]({f.source}) — incident {names[f.id]}" if f.source else
                     f"- {f.cite} — incident {names[f.id]}" for f in facts)


def _fixes(facts: list[Fact]) -> list[str]:
    return [f"- {x} — {f.cite}" for f in facts for x in (f.fixes or ([f.lines[-1].text] if len(f.lines) > 1 else []))]


def _refs(facts: list[Fact]) -> list[dict[str, str]]:
    return [{"title": f.cite, "url": f.source} for f in facts if f.source][:100]


def _keywords(facts: list[Fact], *extra: str) -> list[str]:
    words = [*extra, *(c for f in facts for c in f.components), *(slug_word(f.company) for f in facts)]
    return list(dict.fromkeys(w for w in words if w))[:100]


def _classified(category: str, sensitive: str, normal: str = "INTERNAL") -> str:
    return sensitive if category == "Security" else normal


def runbook(g: Group, names: dict[str, str]) -> dict:
    symptoms = [f"- {f.symptom} — {f.cite}" for f in g.facts if f.symptom]
    fixes = _fixes(g.facts)
    scope = f" ({g.label})" if g.topic else ""
    content = "\n".join([
        f"# {g.name('runbook')}", "",
        f"_Assembled from {len(g.facts)} public postmortem{'s' if len(g.facts) > 1 else ''} in the {g.category} "
        f"category{scope}. Each line quotes its source; follow the links for the full story._", "",
        "## When to use it", "Symptoms reported in these incidents:", *(symptoms or ["- (not described)"]), "",
        "## 1. Rule out the known causes", *[f"- [ ] {f.root_cause.rstrip('.')} — {f.cite}" for f in g.facts], "",
        "## 2. Restore service", "What restored service in these incidents:", *(fixes or [f"- {NO_FIX}"]), "",
        "## 3. Afterwards", "- Record the timeline on the incident and link this runbook.",
        "- Write the postmortem summary, then rate this runbook.", "",
        "## Sources", _sources(g.facts, names),
    ])
    companies = ", ".join(dict.fromkeys(f.company for f in g.facts))
    return {
        "title": g.name("runbook"), "content": content, "article_type": "RUNBOOK",
        "summary": clip(f"What to check and what restored service in {len(g.facts)} {g.category} incidents"
                        f"{scope}: {companies}", 5000),
        "category": g.category, "subcategory": g.label, "tags": [g.category.lower(), "runbook", g.topic or "all"],
        "related_services": [slug_word(f.company) for f in g.facts][:100],
        "related_components": list(dict.fromkeys(c for f in g.facts for c in f.components)),
        "search_keywords": _keywords(g.facts, g.topic or "", *g.label.replace(",", "").split()),
        "external_references": _refs(g.facts), "status": "PUBLISHED",
        "difficulty_level": "ADVANCED" if g.critical else "INTERMEDIATE",
        "data_classification": _classified(g.category, "RESTRICTED"),
    }


def troubleshooting(g: Group, names: dict[str, str], runbook_key: str) -> dict:
    blocks: list[str] = []
    for f in g.facts:
        fixes = f.fixes or ([f.lines[-1].text] if len(f.lines) > 1 else [])
        blocks += [f"### {clip(f.symptom or f.root_cause, 150)}",
                   f"- **Cause:** {f.root_cause}",
                   f"- **What restored service:** {' '.join(fixes) or NO_FIX}",
                   f"- **Seen at:** {f.cite}, severity {f.severity} (incident {names[f.id]})"
                   + (f" — [postmortem]({f.source})" if f.source else ""), ""]
    content = "\n".join([
        f"# {g.name('troubleshooting guide')}", "",
        f"_Symptoms and the causes they turned out to have, from {len(g.facts)} public postmortem"
        f"{'s' if len(g.facts) > 1 else ''}. The steps to take are in {_link(runbook_key, g.name('runbook'))}._", "",
        *blocks,
    ])
    return {
        "title": g.name("troubleshooting guide"), "content": content, "article_type": "TROUBLESHOOTING",
        "summary": clip("Symptoms seen and causes found: " + "; ".join(f"{f.company}: {f.symptom or f.root_cause}"
                                                                       for f in g.facts), 5000),
        "category": g.category, "subcategory": g.label,
        "tags": [g.category.lower(), "troubleshooting", g.topic or "all"],
        "related_services": [slug_word(f.company) for f in g.facts][:100],
        "related_components": list(dict.fromkeys(c for f in g.facts for c in f.components)),
        "search_keywords": _keywords(g.facts, g.topic or "", "symptoms"),
        "external_references": _refs(g.facts), "status": "PUBLISHED",
        "difficulty_level": "ADVANCED" if g.critical else "INTERMEDIATE",
        "data_classification": _classified(g.category, "CONFIDENTIAL"),
    }


def best_practices(facts: list[Fact], status: dict[str, str], names: dict[str, str],
                   before: datetime | None = None) -> list[dict]:
    """One article per topic seen in several categories' incidents the guides know (at least
    MIN_BEST_PRACTICE); with fewer incidents overall, one for the most common topic."""
    pool = [f for f in known(facts, status, before) if f.topic != "other"]
    by_topic: dict[str, list[Fact]] = defaultdict(list)
    for f in pool:
        by_topic[f.topic].append(f)
    chosen = [k for k, _, _ in TOPICS if len(by_topic.get(k, [])) >= MIN_BEST_PRACTICE]
    if not chosen and by_topic:
        chosen = [max(by_topic, key=lambda k: (len(by_topic[k]), k))]
    out = []
    for key in chosen:
        members = _newest_first(by_topic[key])
        label = TOPIC_LABELS[key]
        where = Counter(f.category for f in members)
        category = sorted(where, key=lambda c: (-where[c], c))[0]
        fixes = _fixes(members)
        content = "\n".join([
            f"# Best practices: {label}", "",
            f"_What {len(members)} public postmortems teach about {label}: "
            + ", ".join(f"{n} {c}" for c, n in sorted(where.items(), key=lambda x: (-x[1], x[0]))) + "._", "",
            "## What went wrong", *[f"- {f.root_cause} — {f.cite} ({f.category})" for f in members], "",
            "## What helped", *(fixes or [f"- {NO_FIX}"]), "",
            "## Sources", _sources(members, names),
        ])
        out.append({
            "title": f"Best practices: {label}", "content": content, "article_type": "BEST_PRACTICE",
            "summary": clip(f"Lessons on {label} from {len(members)} public postmortems: "
                            + ", ".join(dict.fromkeys(f.company for f in members)), 5000),
            "category": category, "subcategory": label, "tags": ["best-practice", key],
            "search_keywords": _keywords(members, key), "external_references": _refs(members),
            "status": "PUBLISHED", "difficulty_level": "BEGINNER",
            "data_classification": "CONFIDENTIAL" if key in ("credentials", "ddos") else "INTERNAL",
        })
    return out


def faq(category: str, facts: list[Fact], status: dict[str, str], names: dict[str, str],
        guides: list[tuple[str, str]]) -> dict:
    """Questions about one category's incidents, answered from the data."""
    members = [f for f in facts if f.category == category and not f.duplicate_of]
    sev = Counter(f.severity for f in members)
    topics = Counter(f.topic for f in members)
    open_ = [f for f in members if status[f.id] in IN_FLIGHT]
    qa = [
        (f"How many {category} incidents are recorded?",
         f"{len(members)}: " + ", ".join(f"{sev[s]} {s.lower()}" for s in sorted(sev, key=lambda s: -SEVERITY_RANK[s]))
         + "."),
        ("Which of them are still open?",
         "\n".join(f"- {names[f.id]} ({status[f.id]}): {f.company}" for f in open_) or "None."),
        ("What causes them most often?",
         "\n".join(f"- {TOPIC_LABELS[k]}: {n}" for k, n in sorted(topics.items(), key=lambda x: (-x[1], x[0])))),
        ("Where do I start when one happens?",
         "\n".join(f"- {_link(key, t)}" for t, key in guides) or "There is no runbook for this category yet."),
        ("Which companies' postmortems are they from?",
         ", ".join(sorted(dict.fromkeys(f.company for f in members))) + "."),
    ]
    content = "\n".join([f"# {category} incidents: frequently asked questions", ""]
                        + [f"## {q}\n{a}\n" for q, a in qa])
    return {
        "title": f"{category} incidents: frequently asked questions", "content": content, "article_type": "FAQ",
        "summary": f"Counts, open incidents, common causes and where to start for {category} incidents.",
        "category": category, "tags": [category.lower(), "faq"], "status": "PUBLISHED",
        "search_keywords": _keywords(members), "difficulty_level": "BEGINNER",
        "data_classification": _classified(category, "CONFIDENTIAL"),
    }


def catalogue(category: str, facts: list[Fact], status: dict[str, str], names: dict[str, str]) -> dict:
    """Every incident of one category in a table."""
    members = sorted((f for f in facts if f.category == category), key=lambda f: names[f.id])
    rows = [f"| {names[f.id]} | {f.day:%Y-%m-%d} | {f.company} | {f.severity} | {status[f.id]} | "
            f"{(f.subcategory or '—')} | {clip(f.root_cause, 160).replace('|', '/')} |" for f in members]
    content = "\n".join([f"# {category} incident catalogue", "",
                         "| Incident | Date | Company | Severity | Status | Subcategory | Root cause |",
                         "| --- | --- | --- | --- | --- | --- | --- |", *rows, "", "## Sources",
                         _sources([f for f in members if not f.duplicate_of], names)])
    return {
        "title": f"{category} incident catalogue", "content": content[:200_000], "article_type": "REFERENCE",
        "summary": f"All {len(members)} {category} incidents with date, company, severity, status and root cause.",
        "category": category, "tags": [category.lower(), "catalogue", "reference"], "status": "PUBLISHED",
        "search_keywords": _keywords(members), "external_references": _refs(members),
        "difficulty_level": "INTERMEDIATE", "data_classification": _classified(category, "CONFIDENTIAL"),
    }


def summary(f: Fact, *, name: str, status: str, superseded_by: tuple[str, str] | None) -> dict:
    """A postmortem summary of one incident. Its status follows the incident: a draft while the
    incident is open or investigating, in review once mitigated, deprecated when another summary
    covers the same postmortem."""
    prefix = f"{f.company}, {f.public_year}" if f.date_known else f.company
    timeline = [f"- {x.at.strftime('%Y-%m-%d %H:%M')} UTC — {x.text}" for x in f.lines]
    fixes = f.fixes or ([f.lines[-1].text] if len(f.lines) > 1 else [])
    sub = f" / {f.subcategory}" if f.subcategory else ""
    content = "\n".join([
        *([f"> Superseded by {_link(superseded_by[1], superseded_by[0])}: both summarise the same public "
           "postmortem.", ""] if superseded_by else []),
        f"# {title(prefix, f.root_cause)}", "",
        f"**Company:** {f.company} · **Date:** {f.day:%Y-%m-%d} · **Severity:** {f.severity} · "
        f"**Category:** {f.category}{sub} · **Incident:** {name}", "",
        "## What happened", " ".join(f.story) or f.root_cause, "",
        "## Root cause", f.root_cause, "",
        *(["## Timeline", *timeline, ""] if timeline else []),
        "## What restored service", *([f"- {x}" for x in fixes] or [NO_FIX]), "",
        *(["## Source", f"[{f.cite}]({f.source})"] if f.source else []),
    ])
    in_flight = status in IN_FLIGHT
    return {
        "title": title(prefix, f.root_cause), "content": content, "article_type": "POSTMORTEM_SUMMARY",
        "summary": clip(f.root_cause, 5000), "category": f.category, "subcategory": f.subcategory,
        "tags": [t for t in [slug_word(f.company), f.category.lower(), f.topic, slug_word(f.subcategory)] if t],
        "related_services": [slug_word(f.company)], "related_components": f.components,
        "search_keywords": _keywords([f], f.topic), "external_references": _refs([f]),
        "status": "DEPRECATED" if superseded_by else {"OPEN": "DRAFT", "INVESTIGATING": "DRAFT",
                                                        "MITIGATED": "REVIEW"}.get(status, "PUBLISHED"),
        "difficulty_level": DIFFICULTY_BY_SEVERITY[f.severity],
        "data_classification": "INTERNAL" if in_flight else "PUBLIC",
    }

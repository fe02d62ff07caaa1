"""The whole demo data set from dataset rows, as plain data: a pure function of the rows and of the day
the demo is loaded (`today`, which the seeder passes), so every fresh start seeds the same incidents,
articles and people's work on the same days relative to `today`. What differs between two fresh starts
is what the services draw themselves: ids, article slugs (which end in part of the id) and
created/updated times.

Decisions, all taken from the data:
- incident status: the incidents in flight (OPEN, INVESTIGATING, MITIGATED in turn, 1 in 12 of the rows,
  3 to 15) are the most recent recurrences: rows whose failure was met before, by an earlier row of the
  same cause group (category and topic, the catch-all "other" aside) at the same company or in the same
  component (`recurs`), each keeping at least one such row resolved — what a recommendation is for. A row
  with a twin is left out: the twin, CLOSED as its duplicate, moves with it on the calendar and its whole
  timeline would not fit in the last seven days. With too few recurrences, the most recent dated rows make
  up IN_FLIGHT_MIN. A row citing the same postmortem as an earlier row is CLOSED as its duplicate
  (`duplicate_of` set to it when seeding); the rest are RESOLVED;
- when: the demo calendar (calendar.py) lays the incidents on the weeks before `today`, each moved by a
  whole number of weeks, those in flight in the last seven days; names follow (`INC-<day>-NNN`);
- article status: a summary is DRAFT while its incident is open or investigating, REVIEW once mitigated,
  APPROVED (not yet published) for the few most recently resolved, DEPRECATED for a duplicate, else
  PUBLISHED; guides are PUBLISHED;
- guides: written from the resolved incidents detected before the responders' history begins, then
  revised the day after each day of it that met an incident (`DemoData.revisions`, work.guides_revised),
  the last time from them all;
- views, ratings and bookmarks come from a random generator seeded with each article's key;
- postmortems, and how responders rate recommendations: work.py.
"""

from __future__ import annotations

import random
from datetime import date, datetime
from typing import Any

from app.articles.service import slugify
from app.demo import calendar, docs, guides, work
from app.demo.facts import Fact, read_all
from app.demo.incidents import IN_FLIGHT, OWNERS, Runbook, incident, namespace_of, timeline
from app.demo.spec import IMPORTER, LEAD, USERS, Article, DemoData, Revision
from app.users.models import CLASSIFICATION_ORDER, Classification, Role

IN_FLIGHT_SHARE, IN_FLIGHT_MIN, IN_FLIGHT_MAX = 12, 3, 15
CLEARANCE = {u.username: u.clearance for u in [IMPORTER, *USERS]}


def recurs(later: Fact, earlier: Fact) -> bool:
    """Whether `later` meets `earlier`'s failure again: the same cause group (category and a known topic)
    at the same company or in a component both name (facts.py `components`)."""
    return (later.topic != "other" and (later.category, later.topic) == (earlier.category, earlier.topic)
            and (later.day, later.id) > (earlier.day, earlier.id)
            and (later.company == earlier.company or bool(set(later.components) & set(earlier.components))))


def plan_statuses(facts: list[Fact]) -> dict[str, str]:
    """Incident status by fact id (module docstring): the most recent recurrences are in flight."""
    status = {f.id: "CLOSED" if f.duplicate_of else "RESOLVED" for f in facts}
    canon = [f for f in facts if not f.duplicate_of]
    twinned = {f.duplicate_of for f in facts if f.duplicate_of}  # rows with a twin (module docstring)
    newest = sorted((f for f in canon if f.id not in twinned), key=lambda f: (f.day, f.id), reverse=True)
    dated = [f for f in newest if f.date_known]
    k = min(max(IN_FLIGHT_MIN, min(IN_FLIGHT_MAX, len(facts) // IN_FLIGHT_SHARE)), len(dated) // 2)
    chosen: list[Fact] = []

    def seen_before(f: Fact, away: list[Fact]) -> bool:  # an earlier look-alike stays resolved
        return any(recurs(f, g) for g in canon if g is not f and g not in away)

    for f in newest:
        if len(chosen) < k and seen_before(f, chosen) and all(seen_before(c, [*chosen, f]) for c in chosen):
            chosen.append(f)
    for f in dated:  # too few recurrences: the most recent dated rows make up the minimum
        if len(chosen) < min(k, IN_FLIGHT_MIN) and f not in chosen:
            chosen.append(f)
    for i, f in enumerate(chosen):
        status[f.id] = IN_FLIGHT[i % len(IN_FLIGHT)]
    return status


def approved_summaries(facts: list[Fact], status: dict[str, str]) -> set[str]:
    """The ids whose summaries are APPROVED (not yet published): the few most recently resolved."""
    k = sum(1 for s in status.values() if s in IN_FLIGHT)
    resolved = sorted((f for f in facts if status[f.id] == "RESOLVED"), key=lambda f: (f.day, f.id), reverse=True)
    return {f.id for f in resolved[:max(1, k // 3)]} if k else set()


def on_calendar(facts: list[Fact], status: dict[str, str], today: date) -> list[Fact]:
    """The facts moved onto the demo calendar (calendar.py), never ending on or after `today`."""
    def ends(f: Fact) -> datetime:
        events = timeline(f, status=status[f.id], namespace=namespace_of(f.category), runbook=Runbook("-"),
                          duplicate_of="-")
        return max(e["timestamp"] for e in events)

    return calendar.place(facts, {i for i, s in status.items() if s in IN_FLIGHT}, today, ends)


def incident_names(facts: list[Fact]) -> tuple[list[Fact], dict[str, str]]:
    """Facts oldest first (the creation order), and `INC-YYYYMMDD-NNN` names numbered per day."""
    order = [f for _, f in sorted(enumerate(facts), key=lambda x: (x[1].day, x[0]))]
    names: dict[str, str] = {}
    per_day: dict[str, int] = {}
    for f in order:
        day = f.day.strftime("%Y%m%d")
        per_day[day] = per_day.get(day, 0) + 1
        names[f.id] = f"INC-{day}-{per_day[day]:03d}"
    return order, names


class Keys:
    """A stable key per article, from its title (`slugify`, made unique in creation order). The
    service gives each article a slug of its own when it is created (the title plus part of its
    random id); links between demo articles are written with keys and rewritten to those slugs
    when seeding (`writing.relink`)."""

    def __init__(self) -> None:
        self.taken: set[str] = set()
        self.by_title: dict[str, str] = {}

    def add(self, title: str) -> str:
        base = slugify(title)
        key, n = base, 1
        while key in self.taken:
            n += 1
            key = f"{base}-{n}"
        self.taken.add(key)
        self.by_title.setdefault(title, key)
        return key

    def get(self, title: str) -> str:
        """The key of the first article of this title (a new one when there is none)."""
        return self.by_title.get(title) or self.add(title)


def build(rows: list[dict[str, Any]], *, today: date | None = None) -> DemoData:
    """Users, incidents, articles and the people's work for these dataset rows, loaded on `today` (default:
    the day after the newest row, no clock). Articles come in creation order: postmortem summaries (each
    before any summary that links to it), catalogues, best practices, runbooks, troubleshooting guides
    and FAQs (which link to the runbooks), product guides."""
    facts = read_all(rows)
    status = plan_statuses(facts)
    today = today or calendar.default_today(facts)
    facts = on_calendar(facts, status, today)
    approved = approved_summaries(facts, status)
    order, names = incident_names(facts)
    first, *revised = work.guides_revised(today, [f.detected_at for f in guides.known(facts, status, None)])
    groups = guides.groups(facts, status, first)
    categories = sorted({f.category for f in facts})
    best = guides.best_practices(facts, status, names, first)

    keys = Keys()
    summary_order = [f for f in order if not f.duplicate_of] + [f for f in order if f.duplicate_of]
    summaries = [(f, guides.summary(f, name=names[f.id], status=status[f.id], superseded_by=None))
                 for f in summary_order]
    summary_key = {f.id: keys.add(s["title"]) for f, s in summaries}
    for t in ([f"{c} incident catalogue" for c in categories] + [b["title"] for b in best]
              + [g.name("runbook") for g in groups] + [g.name("troubleshooting guide") for g in groups]
              + [f"{c} incidents: frequently asked questions" for c in categories]):
        keys.add(t)

    articles: list[Article] = []
    for f, s in summaries:
        canonical = next((x for x in summaries if x[0].id == f.duplicate_of), None)
        if canonical:
            s = guides.summary(f, name=names[f.id], status=status[f.id],
                               superseded_by=(canonical[1]["title"], summary_key[canonical[0].id]))
        elif f.id in approved:
            s["status"] = "APPROVED"
        articles.append(Article(fields=s, key=summary_key[f.id], related=[names[f.id]]))
    for c in categories:
        articles.append(_article(guides.catalogue(c, facts, status, names), keys,
                                 related=[names[f.id] for f in facts if f.category == c]))
    articles += _guides(groups, best, keys, names)
    for c in categories:
        mine = [(g.name("runbook"), keys.get(g.name("runbook"))) for g in groups if g.category == c]
        articles.append(_article(guides.faq(c, facts, status, names, mine), keys))
    n_docs = len(docs.product_docs({"incidents": 0, "articles": 0}))
    for d in docs.product_docs({"incidents": len(facts), "articles": len(articles) + n_docs}):
        articles.append(_article(d, keys))
    for a in articles:
        _engagement(a)

    # the guides as revised during the responders' history (work.guides_revised)
    versions = [groups] + [guides.groups(facts, status, at) for at in revised]
    revisions = [Revision(at, _guides(g, guides.best_practices(facts, status, names, at), keys, names))
                 for at, g in zip(revised, versions[1:])]
    runbook_for = [_runbooks(g) for g in versions]
    incidents = []
    guide_titles: dict[str, list[str]] = {}
    for f in order:
        rb = runbook_for[0].get((f.category, f.topic)) or runbook_for[0].get((f.category, None))
        incidents.append(incident(f, name=names[f.id], status=status[f.id], runbook=rb,
                                  duplicate_of=names.get(f.duplicate_of or "")))
        mine = {r.title for r in (v.get((f.category, f.topic)) for v in runbook_for) if r}
        if mine:  # written from incidents of its kind (in any revision)
            guide_titles[names[f.id]] = [t for r in sorted(mine)
                                         for t in (r, r.replace(" runbook", " troubleshooting guide", 1))]
    duplicates = {names[f.id]: names[f.duplicate_of] for f in order if f.duplicate_of in names}
    by_name = {names[f.id]: f for f in facts}
    return DemoData(users=[*USERS, LEAD], incidents=incidents, articles=articles, duplicates=duplicates, today=today,
                    postmortems=work.plan_postmortems(incidents, by_name, today),
                    causes={n: f"{f.category}/{f.topic}" for n, f in by_name.items()}, guides=guide_titles,
                    responders={n: work.responder(f.category) for n, f in by_name.items()}, revisions=revisions)


def _guides(groups: list[guides.Group], best: list[dict], keys: Keys, names: dict[str, str]) -> list[Article]:
    """The best practices, then each group's runbook (the largest of a category featured), then each
    group's troubleshooting guide (which links to its runbook)."""
    out = [_article(b, keys, maintainer="demo-sre") for b in best]
    featured = {max((g for g in groups if g.category == c), key=lambda g: (len(g.facts), g.name("runbook")))
                .name("runbook") for c in {g.category for g in groups}}
    runbooks = [guides.runbook(g, names) | {"is_featured": g.name("runbook") in featured} for g in groups]
    troubleshooting = [guides.troubleshooting(g, names, keys.get(g.name("runbook"))) for g in groups]
    for g, fields in [*zip(groups, runbooks), *zip(groups, troubleshooting)]:
        author = "demo-security" if g.category == "Security" else "demo-sre"
        out.append(_article(fields, keys, author=author, maintainer=author, related=[names[f.id] for f in g.facts]))
    return out


def _article(fields: dict[str, Any], keys: Keys, *, author: str = IMPORTER.username, maintainer: str | None = None,
             related: list[str] | None = None) -> Article:
    key = keys.get(fields["title"])
    return Article(fields=fields, key=key, author=author, maintainer=maintainer, related=(related or [])[:200])


def _runbooks(groups: list[guides.Group]) -> dict[tuple[str, str | None], Runbook]:
    """(category, topic) -> the runbook that covers it; (category, None) -> the category's largest."""
    out: dict[tuple[str, str | None], Runbook] = {}
    for g in sorted(groups, key=lambda g: -len(g.facts)):
        rb = Runbook(g.name("runbook"))
        out.setdefault((g.category, None), rb)
        if g.topic:
            out.setdefault((g.category, g.topic), rb)
        for f in g.facts:
            out.setdefault((g.category, f.topic), rb)
    return out


def can_see(username: str, a: Article) -> bool:
    """The service's visibility rule for the demo users."""
    user = next((u for u in [IMPORTER, *USERS] if u.username == username), None)
    if user is None:
        return False
    cls = Classification(a.fields.get("data_classification", "INTERNAL"))
    if CLASSIFICATION_ORDER.index(cls) > CLASSIFICATION_ORDER.index(user.clearance):
        return False
    return a.fields.get("status") == "PUBLISHED" or user.role != Role.VIEWER or a.author == username


_VIEWS = {"POSTMORTEM_SUMMARY": (5, 40), "RUNBOOK": (60, 120), "TROUBLESHOOTING": (40, 80),
          "BEST_PRACTICE": (30, 60), "FAQ": (15, 40), "REFERENCE": (15, 40), "HOW_TO": (150, 150)}
_RATE = {"RUNBOOK": 0.8, "TROUBLESHOOTING": 0.7, "POSTMORTEM_SUMMARY": 0.2}
_STARS = {"RUNBOOK": [3, 4, 4, 5, 5], "TROUBLESHOOTING": [3, 4, 4, 5], "POSTMORTEM_SUMMARY": [2, 3, 4, 4, 5]}


def _engagement(a: Article) -> None:
    """Views for what has been published, ratings for published articles, bookmarks of featured
    articles and of the runbooks of each person's area; seeded with the key, so always the same."""
    rng = random.Random(f"ikl-demo:{a.key}")
    kind, state = a.fields["article_type"], a.fields.get("status")
    if state not in ("PUBLISHED", "DEPRECATED"):
        return
    base, spread = _VIEWS.get(kind, (20, 40))
    sources = max(1, len(a.related))
    a.views = (base + min(sources, 20) * (5 if kind in ("RUNBOOK", "TROUBLESHOOTING") else 1)
               + rng.randint(0, spread)) * (2 if a.fields.get("is_featured") else 1)
    if state != "PUBLISHED":
        return
    featured = bool(a.fields.get("is_featured"))
    for u in USERS:
        if not can_see(u.username, a):
            continue
        if featured or rng.random() < _RATE.get(kind, 0.5):
            a.ratings[u.username] = rng.choice([4, 5, 5] if featured else _STARS.get(kind, [3, 4, 5]))
        owner = OWNERS.get(namespace_of(a.fields["category"]), ("", ""))[0]
        if featured or (kind == "RUNBOOK" and owner == u.username):
            a.bookmarks.append(u.username)

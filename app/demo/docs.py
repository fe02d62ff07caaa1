"""Articles about the product itself (how to search, how to record an incident, who sees what, the
reference tables, and what the demo holds). Their facts are the documented behaviour (docs/)."""

from __future__ import annotations

import json

from app.demo.spec import IMPORTER, LEAD, USERS
from app.incidents.models import EventType, Severity, Status

CATEGORY = "Getting started"
# The documented knowledge-base search example (the API specification, "Search Knowledge Base").
SPEC_SEARCH = {"query": "database connection timeout", "article_types": ["RUNBOOK", "TROUBLESHOOTING"],
               "categories": ["Database"], "difficulty_levels": ["INTERMEDIATE", "ADVANCED"], "limit": 20, "offset": 0}


def _doc(title: str, article_type: str, summary: str, content: str, tags: list[str], **extra) -> dict:
    return {"title": title, "content": f"# {title}\n\n{content.strip()}\n", "summary": summary,
            "article_type": article_type, "category": CATEGORY, "tags": tags, "status": "PUBLISHED",
            "difficulty_level": "BEGINNER", "data_classification": "PUBLIC", **extra}


def product_docs(counts: dict[str, int]) -> list[dict]:
    """The product articles; `counts` (incidents, articles, ...) describe the seeded data."""
    search = _doc(
        "How to search the knowledge base", "HOW_TO",
        "Find runbooks and troubleshooting guides with one request: query, filters, and the three scores.",
        f"""
Send what you are looking at — an error, a symptom, an incident's description — and narrow it with filters:

```
POST {"/api/knowledge/knowledge-articles/search/"}
{json.dumps(SPEC_SEARCH, indent=2)}
```

Every result carries a `relevance_score` (how well the text matches), a `similarity_score` (how close the
article is to what the query is about) and a `popularity_score` (views, ratings, bookmarks, freshness), each
between 0 and 1, and the `matching_keywords`. The response's `search_id`, passed back as `?search_id=` when
you open a result, counts the click for the statistics.

In GraphQL the same search is `searchKnowledgeBase(input: ...)`. To browse instead, list articles with
`?article_type=RUNBOOK&category=Database&difficulty_level=INTERMEDIATE` or `?search=words` (every word must
occur), and `?is_featured=true` for the articles to start with.
""", ["search", "getting-started"], is_featured=True,
        search_keywords=["search", "filters", "relevance", "similarity", "popularity"])

    record = _doc(
        "How to record an incident and its timeline", "HOW_TO",
        "Create an incident, append timeline events as they happen, and resolve it.",
        f"""
1. `POST /api/v1/incidents/` with a `title`, `severity` ({", ".join(s.value for s in Severity)}), a `namespace`
   and the `affected_services`; the name `INC-YYYYMMDD-NNN` is generated when you give none.
2. Append what happens: `POST /api/v1/incidents/{{name}}/events/` with `{{"events": [...]}}`, each event with a
   `type`, `source` and `message` (and optionally `timestamp`, `severity`, `details`).
3. Move the status along with `PATCH` (each change adds a `StatusChange` event).
4. `POST /api/v1/incidents/{{name}}/resolve/` with the `resolution` (and the `root_cause`).
5. Read the whole story at `GET /api/v1/incidents/{{name}}/timeline`, and the incidents like it at
   `GET /api/v1/incidents/{{name}}/similar/`.
""", ["incidents", "timeline", "getting-started"], is_featured=True, search_keywords=["incident", "timeline"])

    faq = _doc(
        "Knowledge base FAQ: who sees what, ratings and reviews", "FAQ",
        "Why an article is hidden, who may edit, how ratings and reviews work.",
        """
## Why can I not see an article?
Every article has a data classification (PUBLIC < INTERNAL < CONFIDENTIAL < RESTRICTED) and you never see
one above your clearance — not in lists, search, statistics or by its link. Viewers also see only
published articles (and their own); editors and admins see every status.

## Who may write?
Editors create and update articles and mark them reviewed, and cannot classify one above their own
clearance. Deleting is for admins and the author.

## How do ratings work?
One rating (1-5) per person; rating again replaces it. The average feeds the popularity score of search.

## When is an article due for review?
An interval (90 days by default) after its last review or publication; `due_for_review/` lists the
published and approved ones whose date has passed, most overdue first.
""", ["faq", "visibility", "getting-started"], search_keywords=["clearance", "classification", "rating", "review"])

    reference = _doc(
        "Incident severities, statuses and timeline event types", "REFERENCE",
        "The values incidents and their timelines use.",
        f"""
| Field | Values |
| --- | --- |
| severity | {", ".join(s.value for s in Severity)} |
| status | {", ".join(s.value for s in Status)} |
| timeline event type | {", ".join(e.value for e in EventType)} |
| event severity | info, low, medium, high, critical |

Moving an incident to RESOLVED or CLOSED stamps `resolved_at`; reopening it clears it.
""", ["reference", "incidents"], difficulty_level="INTERMEDIATE")

    people = "\n".join(f"| `{u.username}` | {u.role.value} | {u.clearance.value} | {u.team} |"
                       for u in [IMPORTER, *USERS, LEAD])
    about = _doc(
        "About the demo data", "REFERENCE",
        "What the demo holds: incidents from 200 public postmortems, the articles built from them, demo users.",
        f"""
The demo holds {counts["incidents"]} incidents, one per row of a dataset of public postmortems, and
{counts["articles"]} articles: a postmortem summary per incident, runbooks and troubleshooting guides per
category and topic (built from the postmortems' own root causes and fixes, each line citing its source),
best practices per topic, an FAQ and a catalogue per category, and these product guides.

The incidents still OPEN, INVESTIGATING or MITIGATED are the most recent recurrences: rows whose failure an
earlier, resolved row met (the same kind of cause at the same company or in the same component), what a
recommendation is for. Two rows citing the same postmortem are one incident, so the later one is CLOSED as
a duplicate and its summary DEPRECATED.

The incidents happened in the weeks before the demo was loaded: each row is moved by a whole number of
weeks (its weekday, time of day and durations are its own), the incidents still in flight in the last
seven days, and the resolved ones of one cause after one another, so a cause that keeps coming back ends
in the recent weeks. Each source link keeps the public postmortem's own date.

The demo's people have been at work: postmortems in every review status (the newest drafted by
`ikl generate_postmortems`, others drafted on request or written by hand, approved by `demo-lead`),
learning patterns mined from the last 30 days (some validated by `demo-lead`), and recommendations for
the incidents in flight and those resolved in the last 8 weeks, rated and applied by their responders.

Demo users (get a token with `ikl create_token <username>`):

| User | Role | Clearance | Team |
| --- | --- | --- | --- |
{people}

Sign in as `demo-support` (PUBLIC) and as `demo-sre` (CONFIDENTIAL) to see classification at work.
""", ["demo", "getting-started"], is_featured=True, search_keywords=["demo", "users", "dataset"])
    return [reference, faq, about, record, search]

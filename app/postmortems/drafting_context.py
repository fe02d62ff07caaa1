"""What every section of a postmortem draft is written from (`DraftContext`, built once by `generator.draft`),
what a section writer returns (`Section`), and how the draft refers to incidents, postmortems and articles
(REST links, recorded as computed values)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping, NamedTuple
from urllib.parse import quote

# links, as the REST API serves them (incidents by name, articles by slug, postmortems by id)
INCIDENT_LINK = "/api/v1/incidents/{}/"
POSTMORTEM_LINK = "/api/knowledge/postmortems/{}/"
ARTICLE_LINK = "/api/knowledge/knowledge-articles/{}/"
RUNBOOK_TYPE = "RUNBOOK"  # article_type of a runbook


@dataclass
class DraftContext:
    """The sources of one draft, filtered and read once. `computed` is the draft's own set of computed values
    (durations, due dates, links), which the section writers add to."""
    incident: Mapping[str, Any]
    similar: list[dict[str, Any]]            # similar incidents detected before this one (earlier_similar)
    articles: list[Mapping[str, Any]]        # matched knowledge base articles with a title, one per id
    pms: list[Mapping[str, Any]]             # postmortems of those similar incidents, with a title
    patterns: Iterable[Mapping[str, Any]]    # validated learning patterns the incident matches
    evs: list[dict[str, Any]]                # the incident's events in time order, de-duplicated
    real: list[dict[str, Any]]               # those people and tools recorded (not workflow status changes)
    title: str
    description: str                         # the known paragraphs of the description beyond the title
    severity: Any
    services: list[Any]
    teams: list[Any]
    detected: datetime | None
    resolved: datetime | None
    duration: str | None                     # detection to resolution, in words (None when too short or unknown)
    root_cause: str                          # empty when unknown
    resolution: str                          # empty when unknown
    unknown_fix: bool                        # a resolution is recorded, but as a placeholder
    name: str
    now: datetime                            # when the draft is written
    owner: str | None                        # who owns its action items (action_items.item_owner)
    computed: set[str]

    @property
    def where(self) -> Any:
        """The first affected service (what an action item names), if any."""
        return self.services[0] if self.services else None

    @property
    def runbooks(self) -> list[dict[str, Any]]:
        """The RunbookMatch events."""
        return [e for e in self.evs if e.get("type") == "RunbookMatch"]


class Section(NamedTuple):
    """A section as written: its value, its evidence score (0-1) and what it was built from."""
    value: Any
    evidence: float
    built_from: list[str]


def link(template: str, key: Any, computed: set[str]) -> str:
    """A REST link (recorded as a computed value)."""
    url = template.format(quote(str(key), safe=""))
    computed.add(url)
    return url


def incident_link(s: Mapping[str, Any], computed: set[str]) -> str:
    """`, <link>` of a similar incident; none without a name (the REST API finds incidents by name)."""
    return f", {link(INCIDENT_LINK, s['name'], computed)}" if s.get("name") else ""


def postmortem_ref(p: Mapping[str, Any], computed: set[str], similar: Iterable[Mapping[str, Any]] = ()) -> str:
    """A similar postmortem by title, the similar incident it is about (when given) and its link."""
    of = next((s.get("name") for s in similar if p.get("incident") and s.get("_id") == p.get("incident")), None)
    ref = f" ({link(POSTMORTEM_LINK, p['_id'], computed)})" if p.get("_id") else ""
    return f"postmortem \"{p['title'].strip()}\"" + (f" of {of}" if of else "") + ref


def kind(a: Mapping[str, Any]) -> str:
    """An article's type as stored (`RUNBOOK`), also when given as an enum."""
    value = a.get("article_type")
    return str(getattr(value, "value", value) or "")


def article_ref(a: Mapping[str, Any], computed: set[str]) -> str:
    """An article by title and type, with its link (the REST API finds articles by slug), else its id."""
    of_kind = f"{kind(a)}, " if kind(a) else ""
    where = link(ARTICLE_LINK, a["slug"], computed) if a.get("slug") else f"article {a.get('_id')}"
    return f"\"{a['title'].strip()}\" ({of_kind}{where})"

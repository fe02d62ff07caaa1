"""What the demo seeds, as plain data (built without touching a database)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from app.articles.models import ArticleCreate
from app.incidents.models import IncidentCreate
from app.users.models import Classification, Role, UserCreate

# The user the command line seeds with (app/cli.py creates it too, with the same values).
IMPORTER = UserCreate(username="demo-importer", team="sre", role=Role.ADMIN, clearance=Classification.RESTRICTED,
                      service_account=True)
# People to try the product as: one per role and clearance (`ikl create_token demo-oncall` prints a token).
USERS = [
    UserCreate(username="demo-sre", team="platform", role=Role.EDITOR, clearance=Classification.CONFIDENTIAL),
    UserCreate(username="demo-security", team="security", role=Role.EDITOR, clearance=Classification.RESTRICTED),
    UserCreate(username="demo-oncall", team="application-teams", role=Role.VIEWER,
               clearance=Classification.INTERNAL),
    UserCreate(username="demo-support", team="support", role=Role.VIEWER, clearance=Classification.PUBLIC),
]
# The SRE lead: approves postmortems and validates learning patterns (both need an admin). Not among USERS,
# whose reading of the knowledge base (views, ratings, bookmarks) the articles carry.
LEAD = UserCreate(username="demo-lead", team="sre", role=Role.ADMIN, clearance=Classification.RESTRICTED)


@dataclass
class Article:
    """One article to create: its fields, who writes it, and how it has been used."""

    fields: dict[str, Any]            # ArticleCreate fields; `maintainer` is set from `maintainer` below
    key: str                          # stable, from the title; links in `content` use keys (see build.Keys)
    author: str = IMPORTER.username   # username
    maintainer: str | None = None     # username
    related: list[str] = field(default_factory=list)   # incident names
    views: int = 0
    ratings: dict[str, int] = field(default_factory=dict)   # username -> 1..5
    bookmarks: list[str] = field(default_factory=list)      # usernames

    def create(self) -> ArticleCreate:
        """The input model (maintainer and related incidents are ids, filled in when seeding)."""
        return ArticleCreate.model_validate(self.fields)

    @property
    def title(self) -> str:
        return self.fields["title"]


@dataclass
class PostmortemPlan:
    """One postmortem the demo's people wrote, and how far it got (app/demo/work.py)."""

    incident: str                     # incident name
    status: str                       # DRAFT, IN_REVIEW, APPROVED, PUBLISHED or ARCHIVED
    owner: str                        # username; the postmortem-bot for drafts the command generated
    generated_by: str | None = None   # username of who asked for the automated draft (a generation), else None
    trigger: str = "manual"           # the generation's trigger: manual (a person asked) or command
    approver: str | None = None       # username
    reviewers: list[str] = field(default_factory=list)   # usernames
    written: dict[str, Any] = field(default_factory=dict)  # the sections a person wrote (PostmortemCreate fields)


@dataclass
class Revision:
    """The guides as revised at `at`, from the resolved incidents detected before."""

    at: datetime
    articles: list[Article]


@dataclass
class DemoData:
    users: list[UserCreate]
    incidents: list[IncidentCreate]   # in creation order (oldest first)
    articles: list[Article]           # in creation order
    duplicates: dict[str, str] = field(default_factory=dict)   # incident name -> the name of its canonical
    today: date | None = None         # the day the demo is loaded: every date is before it
    postmortems: list[PostmortemPlan] = field(default_factory=list)   # in creation order
    causes: dict[str, str] = field(default_factory=dict)   # incident name -> "category/topic" (the cause group)
    guides: dict[str, list[str]] = field(default_factory=dict)   # incident name -> its runbook and guide titles
    responders: dict[str, str] = field(default_factory=dict)  # incident name -> the editor who works on it
    # the runbooks, troubleshooting guides and best practices as revised during the responders' history
    # (work.guides_revised, activity.revise_guides): each updates the article of its title, or is a new one
    revisions: list[Revision] = field(default_factory=list)

    def every_article(self) -> list[Article]:
        """The articles as first written, then every revision's."""
        return [*self.articles, *(a for r in self.revisions for a in r.articles)]

    def dump(self) -> dict[str, Any]:
        """Everything as JSON-ready data (for comparing two builds)."""
        return {"users": [u.model_dump(mode="json") for u in self.users],
                "incidents": [i.model_dump(mode="json") for i in self.incidents],
                "duplicates": dict(self.duplicates), "today": self.today.isoformat() if self.today else None,
                "postmortems": [p.__dict__ for p in self.postmortems], "causes": dict(self.causes),
                "guides": dict(self.guides), "responders": dict(self.responders),
                "articles": [_dumped(a) for a in self.articles],
                "revisions": [{"at": r.at.isoformat(), "articles": [_dumped(a) for a in r.articles]} for r in self.revisions]}


def _dumped(a: Article) -> dict[str, Any]:
    return {**a.__dict__, "fields": a.create().model_dump(mode="json")}

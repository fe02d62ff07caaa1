from __future__ import annotations

import uuid
from enum import Enum


from pydantic import Field, HttpUrl, field_validator

from app.inputs import MAX_PASTED_CHARS, HttpLink, InputModel, JsonList, PastedText, StrList, UtcDatetime
from app.users.models import Classification


class ArticleType(str, Enum):
    RUNBOOK = "RUNBOOK"
    TROUBLESHOOTING = "TROUBLESHOOTING"
    BEST_PRACTICE = "BEST_PRACTICE"
    HOW_TO = "HOW_TO"
    FAQ = "FAQ"
    REFERENCE = "REFERENCE"
    POSTMORTEM_SUMMARY = "POSTMORTEM_SUMMARY"


# Kinds of article by what a responder does with them: a guide is followed step by step for one kind of
# failure; a how-to or best practice is followed too; a postmortem summary, a catalogue (REFERENCE) or an
# FAQ is about incidents, not something to follow (a category's catalogue lists every cause it met).
GUIDE_TYPES = (ArticleType.RUNBOOK.value, ArticleType.TROUBLESHOOTING.value)
FOLLOWED_TYPES = (*GUIDE_TYPES, ArticleType.HOW_TO.value, ArticleType.BEST_PRACTICE.value)


class Difficulty(str, Enum):
    BEGINNER = "BEGINNER"
    INTERMEDIATE = "INTERMEDIATE"
    ADVANCED = "ADVANCED"
    EXPERT = "EXPERT"


class ArticleStatus(str, Enum):
    DRAFT = "DRAFT"
    REVIEW = "REVIEW"
    APPROVED = "APPROVED"
    PUBLISHED = "PUBLISHED"
    DEPRECATED = "DEPRECATED"


def _uuid_list(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [str(uuid.UUID(v)) for v in values]


def _uuid(value: str | None) -> str | None:
    return str(uuid.UUID(value)) if value else None


class RunbookLinkKind(str, Enum):
    RUNBOOK = "RUNBOOK"              # a runbook to follow or run (Rundeck, a wiki page, a notebook…)
    AUTOMATION = "AUTOMATION"        # a workflow that runs it (a job, a pipeline, a webhook)
    DASHBOARD = "DASHBOARD"          # where to watch it work
    DOCUMENTATION = "DOCUMENTATION"
    OTHER = "OTHER"


RUNBOOK_LINKS_MAX = 20


class RunbookLink(InputModel):
    """A link from an article to a runbook or the automation that runs it: a name, an http(s) URL, a kind."""

    name: str = Field(min_length=1, max_length=200)
    url: HttpLink = Field(min_length=1, max_length=2048)
    kind: RunbookLinkKind = RunbookLinkKind.RUNBOOK


# PATCH may set these to null; every other field needs a value.
NULLABLE = frozenset({"maintainer", "confluence_url", "wiki_url", "last_reviewed", "next_review_due"})


class _ArticleFields(InputModel):
    summary: str = Field("", max_length=5_000)
    subcategory: str = Field("", max_length=100)
    tags: StrList = Field(default_factory=list, max_length=50)
    difficulty_level: Difficulty = Difficulty.INTERMEDIATE
    status: ArticleStatus = ArticleStatus.DRAFT
    is_featured: bool = False
    related_services: StrList = Field(default_factory=list, max_length=100)
    related_components: StrList = Field(default_factory=list, max_length=100)
    related_incidents: list[str] = Field(default_factory=list, max_length=200)
    source_postmortems: list[str] = Field(default_factory=list, max_length=200)
    maintainer: str | None = None
    confluence_url: HttpUrl | None = None
    wiki_url: HttpUrl | None = None
    external_references: JsonList = Field(default_factory=list, max_length=100)
    runbook_links: list[RunbookLink] = Field(default_factory=list, max_length=RUNBOOK_LINKS_MAX)
    search_keywords: StrList = Field(default_factory=list, max_length=100)
    data_classification: Classification = Classification.INTERNAL
    last_reviewed: UtcDatetime | None = None
    next_review_due: UtcDatetime | None = None

    _ids = field_validator("related_incidents", "source_postmortems")(_uuid_list)

    _maintainer = field_validator("maintainer")(_uuid)


class ArticleCreate(_ArticleFields):
    """POST, and PUT (a full replacement takes the same fields)."""

    title: str = Field(min_length=1, max_length=200)
    content: str = Field(min_length=1, max_length=200_000)
    article_type: ArticleType
    category: str = Field(min_length=1, max_length=100)


class ArticleUpdate(InputModel):
    """PATCH: only the fields sent change."""

    title: str | None = Field(None, min_length=1, max_length=200)
    content: str | None = Field(None, min_length=1, max_length=200_000)
    article_type: ArticleType | None = None
    category: str | None = Field(None, min_length=1, max_length=100)
    summary: str | None = Field(None, max_length=5_000)
    subcategory: str | None = Field(None, max_length=100)
    tags: StrList | None = Field(None, max_length=50)
    difficulty_level: Difficulty | None = None
    status: ArticleStatus | None = None
    is_featured: bool | None = None
    related_services: StrList | None = Field(None, max_length=100)
    related_components: StrList | None = Field(None, max_length=100)
    related_incidents: list[str] | None = Field(None, max_length=200)
    source_postmortems: list[str] | None = Field(None, max_length=200)
    maintainer: str | None = None
    confluence_url: HttpUrl | None = None
    wiki_url: HttpUrl | None = None
    external_references: JsonList | None = Field(None, max_length=100)
    runbook_links: list[RunbookLink] | None = Field(None, max_length=RUNBOOK_LINKS_MAX)
    search_keywords: StrList | None = Field(None, max_length=100)
    data_classification: Classification | None = None
    last_reviewed: UtcDatetime | None = None
    next_review_due: UtcDatetime | None = None

    _ids = field_validator("related_incidents", "source_postmortems")(_uuid_list)
    _maintainer = field_validator("maintainer")(_uuid)


class RateInput(InputModel):
    rating: int = Field(ge=1, le=5, strict=True)
    feedback: str = Field("", max_length=5_000)


class SearchInput(InputModel):
    query: PastedText = Field(min_length=1, max_length=MAX_PASTED_CHARS)
    article_types: list[ArticleType] = Field(default_factory=list, max_length=20)
    categories: list[str] = Field(default_factory=list, max_length=50)
    difficulty_levels: list[Difficulty] = Field(default_factory=list, max_length=10)
    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=9_900)  # offset + limit stays within the index's 10,000-hit window

"""A demo article as the service takes it (spec.Article → ArticleCreate fields): its links to other demo
articles rewritten from their keys to the slugs the service gave them, its maintainer and related
incidents as ids."""

from __future__ import annotations

import re
from typing import Any

from app.demo.guides import ARTICLES
from app.demo.spec import Article
from app.users.models import User

LINK = re.compile(r"\]\(" + re.escape(ARTICLES) + r"/([a-z0-9-]+)/\)")  # a markdown link to an article


def relink(content: str, slugs: dict[str, str]) -> str:
    """Links to other demo articles, from their keys to the slugs they were given (every target is
    created before the articles that link to it)."""
    return LINK.sub(lambda m: f"]({ARTICLES}/{slugs.get(m[1], m[1])}/)", content)


def fields(a: Article, *, slugs: dict[str, str], people: dict[str, User], ids: dict[str, str]) -> dict[str, Any]:
    """`a`'s fields to create it with: `slugs` by article key, `people` by username, incident `ids` by name."""
    return {**a.fields, "content": relink(a.fields["content"], slugs),
            "maintainer": people[a.maintainer].id if a.maintainer else None,
            "related_incidents": [ids[x] for x in a.related if x in ids]}

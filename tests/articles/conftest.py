from __future__ import annotations

import pytest

from tests.conftest import unique

BASE = "/api/knowledge/knowledge-articles/"

SPEC_CREATE = {
    "title": "Database Troubleshooting Guide",
    "content": "This guide covers common database issues...",
    "summary": "Comprehensive guide for database troubleshooting",
    "article_type": "TROUBLESHOOTING",
    "category": "Database",
    "subcategory": "Performance",
    "tags": ["database", "troubleshooting", "performance"],
    "difficulty_level": "INTERMEDIATE",
    "related_services": ["database", "api"],
    "related_components": ["postgresql", "connection-pool"],
}


@pytest.fixture
def make_article(client, editor):
    """Create an article through the API (published unless said otherwise); returns its JSON."""
    async def make(headers=None, **fields):
        body = {"title": unique("Article"), "content": "content", "article_type": "RUNBOOK", "category": "General",
                "status": "PUBLISHED", **fields}
        r = await client.post(BASE, json=body, headers=headers or editor)
        assert r.status_code == 201, r.text
        return r.json()
    return make


async def sync_search(bk) -> None:
    """Push pending outbox entries to the search index now and make them searchable."""
    from app.indexing import outbox

    await outbox.flush(bk, index="articles")
    await bk.search.indices.refresh(index=bk.index_alias("articles"))

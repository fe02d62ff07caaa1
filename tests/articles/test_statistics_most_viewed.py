"""statistics.most_viewed lists articles people viewed, never one nobody opened (before: zero-view articles
filled it on a fresh knowledge base)."""

from __future__ import annotations

from tests.articles.conftest import BASE


async def test_most_viewed_lists_no_article_with_zero_views(client, viewer, make_article):
    unseen = await make_article()
    seen = await make_article()
    await client.get(f"{BASE}{seen['slug']}/", headers=viewer)
    most = (await client.get(BASE + "statistics/", headers=viewer)).json()["most_viewed"]
    assert all(a["view_count"] > 0 for a in most), most
    assert unseen["id"] not in [a["id"] for a in most]

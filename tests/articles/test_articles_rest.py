"""Knowledge-base articles over REST: the documented contract, permissions, clearance, concurrency."""

from __future__ import annotations

import asyncio

import pytest

from tests.articles.conftest import BASE, SPEC_CREATE
from tests.conftest import unique
from tests.incidents.test_rest import error_shape


async def test_spec_create_example_verbatim(client, editor, tokens, bk):
    r = await client.post(BASE, json=SPEC_CREATE, headers=editor)
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["slug"].startswith("database-troubleshooting-guide")
    for k, v in SPEC_CREATE.items():
        assert a[k] == v
    assert a["status"] == "DRAFT" and a["view_count"] == 0 and a["data_classification"] == "INTERNAL"
    assert a["author"] == tokens["editor_user"].id and a["author_username"] == tokens["editor_user"].username
    assert a["maintainer_username"] == tokens["editor_user"].username and a["rating_average"] == 0
    assert a["created_at"].endswith("Z") and a["next_review_due"] is None
    audit = await bk.mongo.audit_log.find_one({"subject_id": a["id"], "action": "create"})
    assert audit["user_id"] == tokens["editor_user"].id and audit["at"]


async def test_field_limits_and_bad_input(client, editor, bk):
    before = await bk.mongo.articles.count_documents({})
    for body in ({**SPEC_CREATE, "title": "x" * 201}, {**SPEC_CREATE, "category": "c" * 101},
                 {**SPEC_CREATE, "subcategory": "s" * 101}, {**SPEC_CREATE, "article_type": "ESSAY"},
                 {**SPEC_CREATE, "difficulty_level": "EASY"}, {**SPEC_CREATE, "unknown": 1},
                 {**SPEC_CREATE, "tags": "database"}, {**SPEC_CREATE, "wiki_url": "not a url"},
                 {k: v for k, v in SPEC_CREATE.items() if k != "title"}):
        error_shape(await client.post(BASE, json=body, headers=editor), 400, "VALIDATION_ERROR")
    error_shape(await client.post(BASE, content=b"{oops", headers={**editor, "Content-Type": "application/json"}),
                400, "MALFORMED_JSON")
    assert await bk.mongo.articles.count_documents({}) == before


async def test_viewer_cannot_write(client, viewer, make_article):
    error_shape(await client.post(BASE, json=SPEC_CREATE, headers=viewer), 403, "PERMISSION_DENIED")
    a = await make_article()
    error_shape(await client.patch(f"{BASE}{a['slug']}/", json={"title": "x"}, headers=viewer), 403)
    error_shape(await client.delete(f"{BASE}{a['slug']}/", headers=viewer), 403)


async def test_update_put_patch_and_delete(client, editor, admin, make_article, bk):
    a = await make_article(status="DRAFT")
    r = await client.patch(f"{BASE}{a['slug']}/", json={"status": "PUBLISHED", "summary": "new"}, headers=editor)
    assert r.status_code == 200
    u = r.json()
    assert u["status"] == "PUBLISHED" and u["summary"] == "new" and u["published_at"]
    assert u["next_review_due"] > u["published_at"] and u["slug"] == a["slug"]
    error_shape(await client.patch(f"{BASE}{a['slug']}/", json={"title": None}, headers=editor), 400)
    put = {**SPEC_CREATE, "title": "Replaced title", "status": "PUBLISHED"}
    r = await client.put(f"{BASE}{a['slug']}/", json=put, headers=editor)
    assert r.status_code == 200 and r.json()["title"] == "Replaced title" and r.json()["slug"] == a["slug"]
    assert r.json()["tags"] == SPEC_CREATE["tags"]
    error_shape(await client.put(f"{BASE}{a['slug']}/", json={"title": "only"}, headers=editor), 400)
    assert (await client.delete(f"{BASE}{a['slug']}/", headers=admin)).status_code == 204
    error_shape(await client.get(f"{BASE}{a['slug']}/", headers=admin), 404, "ARTICLE_NOT_FOUND")
    actions = [x["action"] async for x in bk.mongo.audit_log.find({"subject_id": a["id"]}).sort("at", 1)]
    assert actions == ["create", "update", "update", "delete"]


async def test_only_admin_or_author_deletes(client, editor, admin, make_article):
    a = await make_article(headers=admin)
    error_shape(await client.delete(f"{BASE}{a['slug']}/", headers=editor), 403)
    b = await make_article(headers=editor)
    assert (await client.delete(f"{BASE}{b['slug']}/", headers=editor)).status_code == 204


async def test_views_are_counted_atomically(client, viewer, make_article, bk):
    a = await make_article()
    results = await asyncio.gather(*(client.get(f"{BASE}{a['slug']}/", headers=viewer) for _ in range(30)))
    assert all(r.status_code == 200 for r in results)
    assert (await bk.mongo.articles.find_one({"_id": a["id"]}))["view_count"] == 30
    assert await bk.mongo.usage_events.count_documents({"kind": "article.view", "subject": a["id"]}) == 30


async def test_drafts_hidden_from_viewers(client, viewer, editor, make_article):
    draft = await make_article(status="DRAFT")
    error_shape(await client.get(f"{BASE}{draft['slug']}/", headers=viewer), 404)
    assert (await client.get(f"{BASE}{draft['slug']}/", headers=editor)).status_code == 200
    r = await client.get(BASE, params={"search": draft["title"]}, headers=viewer)
    assert r.json()["count"] == 0
    r = await client.get(BASE, params={"search": draft["title"]}, headers=editor)
    assert r.json()["count"] == 1


async def test_classification_above_clearance_is_invisible_everywhere(client, viewer, admin, make_article):
    marker = unique("secretmarker").replace("-", "")
    secret = await make_article(headers=admin, data_classification="RESTRICTED", title=f"Restricted {marker}",
                                content=f"{marker} restricted content", is_featured=True)
    await make_article(headers=admin, data_classification="PUBLIC", title=f"Public {marker}",
                       content=f"{marker} public content")
    error_shape(await client.get(f"{BASE}{secret['slug']}/", headers=viewer), 404)
    listed = (await client.get(BASE, params={"search": marker}, headers=viewer)).json()
    assert [x["title"] for x in listed["results"]] == [f"Public {marker}"]
    assert (await client.get(BASE, params={"search": marker}, headers=admin)).json()["count"] == 2
    for path in ("popular/?limit=100", "due_for_review/?page_size=100", "bookmarks/"):
        body = (await client.get(BASE + path, headers=viewer)).json()
        assert secret["id"] not in [x["id"] for x in body["results"]]
    stats = (await client.get(BASE + "statistics/", headers=viewer)).json()
    admin_stats = (await client.get(BASE + "statistics/", headers=admin)).json()
    assert admin_stats["total_articles"] > stats["total_articles"]
    assert stats["by_status"].get("PUBLISHED", 0) <= admin_stats["by_status"]["PUBLISHED"]
    assert secret["id"] not in [x["id"] for x in stats["most_viewed"] + stats["best_rated"]]
    error_shape(await client.post(f"{BASE}{secret['slug']}/rate/", json={"rating": 5}, headers=viewer), 404)
    error_shape(await client.post(f"{BASE}{secret['slug']}/bookmark/", headers=viewer), 404)


async def test_editor_cannot_classify_above_own_clearance(client, editor):
    error_shape(await client.post(BASE, json={**SPEC_CREATE, "data_classification": "RESTRICTED"}, headers=editor), 400)


async def test_list_filters_ordering_and_pagination(client, viewer, make_article):
    cat = unique("Cat")
    for i, (t, d, f) in enumerate([("RUNBOOK", "BEGINNER", True), ("FAQ", "EXPERT", False),
                                   ("RUNBOOK", "EXPERT", False)]):
        await make_article(title=f"{cat} item {i}", category=cat, subcategory="Sub" if i else "",
                           article_type=t, difficulty_level=d, is_featured=f)

    async def titles(**params):
        r = await client.get(BASE, params={"category": cat, **params}, headers=viewer)
        assert r.status_code == 200, r.text
        return [x["title"] for x in r.json()["results"]]

    assert await titles(article_type="RUNBOOK", ordering="title") == [f"{cat} item 0", f"{cat} item 2"]
    assert await titles(is_featured="true") == [f"{cat} item 0"]
    assert await titles(difficulty_level="EXPERT", ordering="-title") == [f"{cat} item 2", f"{cat} item 1"]
    assert await titles(subcategory="Sub", ordering="created_at") == [f"{cat} item 1", f"{cat} item 2"]
    assert await titles(status="PUBLISHED", ordering="-view_count,title") == [f"{cat} item {i}" for i in range(3)]
    page = (await client.get(BASE, params={"category": cat, "page_size": 2}, headers=viewer)).json()
    assert page["count"] == 3 and page["next"] and len(page["results"]) == 2
    error_shape(await client.get(BASE, params={"is_featured": "maybe"}, headers=viewer), 400, "INVALID_FILTER")
    error_shape(await client.get(BASE, params={"ordering": "rating_sum"}, headers=viewer), 400, "INVALID_ORDERING")
    error_shape(await client.get(BASE, params={"article_type": "ESSAY"}, headers=viewer), 400, "INVALID_FILTER")


async def test_rating_one_per_user_and_exact_under_concurrency(client, bk, make_article, tokens):
    from app.users.models import Role, UserCreate
    from app.users.service import create_user, issue_token

    a = await make_article()
    raters = []
    for i in range(12):
        u = await create_user(bk, data=UserCreate(username=unique("rater"), role=Role.VIEWER))
        raters.append({"Authorization": f"Token {await issue_token(bk, user=u)}"})
    ratings = [(i % 5) + 1 for i in range(12)]
    results = await asyncio.gather(*(client.post(f"{BASE}{a['slug']}/rate/", json={"rating": r, "feedback": "ok"},
                                                 headers=h) for r, h in zip(ratings, raters)))
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    # and the same users re-rate concurrently: replaces, never adds
    re_ratings = [5] * 12
    await asyncio.gather(*(client.post(f"{BASE}{a['slug']}/rate/", json={"rating": r}, headers=h)
                           for r, h in zip(re_ratings, raters)))
    doc = await bk.mongo.articles.find_one({"_id": a["id"]})
    assert doc["rating_count"] == 12 and doc["rating_sum"] == 60 and doc["rating_average"] == 5
    assert await bk.mongo.article_ratings.count_documents({"article_id": a["id"]}) == 12
    error_shape(await client.post(f"{BASE}{a['slug']}/rate/", json={"rating": 6}, headers=raters[0]), 400)
    error_shape(await client.post(f"{BASE}{a['slug']}/rate/", json={"rating": "5"}, headers=raters[0]), 400)


async def test_bookmarks_idempotent_and_listed(client, viewer, make_article, bk):
    a = await make_article()
    r1 = await client.post(f"{BASE}{a['slug']}/bookmark/", headers=viewer)
    r2 = await client.post(f"{BASE}{a['slug']}/bookmark/", headers=viewer)
    assert (r1.status_code, r2.status_code) == (201, 200) and r2.json()["bookmarked"] is True
    assert (await bk.mongo.articles.find_one({"_id": a["id"]}))["bookmark_count"] == 1
    mine = (await client.get(BASE + "bookmarks/", headers=viewer)).json()
    assert a["id"] in [x["id"] for x in mine["results"]]
    r = await client.delete(f"{BASE}{a['slug']}/bookmark/", headers=viewer)
    assert r.status_code == 200 and r.json() == {"slug": a["slug"], "bookmarked": False, "changed": True}
    assert (await client.delete(f"{BASE}{a['slug']}/bookmark/", headers=viewer)).json()["changed"] is False
    assert (await bk.mongo.articles.find_one({"_id": a["id"]}))["bookmark_count"] == 0
    mine = (await client.get(BASE + "bookmarks/", headers=viewer)).json()
    assert a["id"] not in [x["id"] for x in mine["results"]]


async def test_due_for_review_and_mark_reviewed(client, editor, viewer, make_article):
    a = await make_article(status="APPROVED", last_reviewed="2020-01-01T00:00:00Z")
    assert a["next_review_due"] == "2020-03-31T00:00:00Z"  # 90 days after the last review
    due = (await client.get(BASE + "due_for_review/", params={"page_size": 100}, headers=editor)).json()
    assert a["id"] in [x["id"] for x in due["results"]]
    hidden = (await client.get(BASE + "due_for_review/", params={"page_size": 100}, headers=viewer)).json()
    assert a["id"] not in [x["id"] for x in hidden["results"]]  # not published: viewers do not see it
    dues = [x["next_review_due"] for x in due["results"]]
    assert dues == sorted(dues)
    r = await client.post(f"{BASE}{a['slug']}/mark_reviewed/", headers=editor)
    assert r.status_code == 200 and r.json()["next_review_due"] > r.json()["last_reviewed"]
    due = (await client.get(BASE + "due_for_review/", params={"page_size": 100}, headers=editor)).json()
    assert a["id"] not in [x["id"] for x in due["results"]]
    error_shape(await client.post(f"{BASE}{a['slug']}/mark_reviewed/", headers=viewer), 403)


async def test_popular_orders_by_popularity(client, viewer, make_article):
    cold = await make_article()
    hot = await make_article()
    for _ in range(5):
        await client.get(f"{BASE}{hot['slug']}/", headers=viewer)
    await client.post(f"{BASE}{hot['slug']}/rate/", json={"rating": 5}, headers=viewer)
    body = (await client.get(BASE + "popular/", params={"limit": 100}, headers=viewer)).json()
    ids = [x["id"] for x in body["results"]]
    assert ids.index(hot["id"]) < ids.index(cold["id"])
    scores = [x["popularity_score"] for x in body["results"]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    error_shape(await client.get(BASE + "popular/", params={"limit": "0"}, headers=viewer), 400)


async def test_statistics_shape(client, viewer):
    s = (await client.get(BASE + "statistics/", headers=viewer)).json()
    for key in ("total_articles", "by_type", "by_status", "by_category", "by_difficulty", "total_views",
                "average_rating", "featured_count", "due_for_review_count", "most_viewed", "best_rated", "usage"):
        assert key in s
    assert set(s["by_status"]) <= {"PUBLISHED"}  # a viewer sees published articles only
    for key in ("searches", "searches_without_results", "top_search_terms", "click_through_rate"):
        assert key in s["usage"]


@pytest.mark.parametrize("path", ["", "search/", "statistics/"])
async def test_needs_token(client, path):
    r = await client.request("POST" if path == "search/" else "GET", BASE + path, json={"query": "x"})
    error_shape(r, 401, "NOT_AUTHENTICATED")

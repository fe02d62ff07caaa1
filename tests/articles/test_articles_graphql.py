"""The knowledge base through GraphQL: same service as REST, typed errors, DataLoaders."""

from __future__ import annotations

from datetime import datetime, timezone

from tests.articles.conftest import sync_search
from tests.conftest import unique
from tests.incidents.test_graphql import gql

ARTICLE_FIELDS = "id slug title status viewCount ratingAverage author { username } maintainer { username }"


async def test_create_read_update_delete(client, editor, admin, viewer, tokens):
    out = await gql(client, editor, """mutation($input: CreateKnowledgeArticleInput!) {
        createKnowledgeArticle(input: $input) { __typename
          ... on KnowledgeArticle { %s tags difficultyLevel dataClassification }
          ... on UserError { code message field } } }""" % ARTICLE_FIELDS, input={
        "title": "Database Troubleshooting Guide", "content": "This guide covers common database issues...",
        "summary": "Comprehensive guide for database troubleshooting", "articleType": "TROUBLESHOOTING",
        "category": "Database", "subcategory": "Performance", "tags": ["database", "troubleshooting", "performance"],
        "difficultyLevel": "INTERMEDIATE", "relatedServices": ["database", "api"],
        "relatedComponents": ["postgresql", "connection-pool"], "status": "PUBLISHED"})
    a = out["data"]["createKnowledgeArticle"]
    assert a["__typename"] == "KnowledgeArticle" and a["author"]["username"] == tokens["editor_user"].username
    assert a["difficultyLevel"] == "INTERMEDIATE" and a["dataClassification"] == "INTERNAL"
    got = await gql(client, viewer, "query($s: String!) { knowledgeArticle(slug: $s) { viewCount } }", s=a["slug"])
    assert got["data"]["knowledgeArticle"]["viewCount"] == 1
    out = await gql(client, editor, """mutation($s: String!) { updateKnowledgeArticle(slug: $s, input: {summary: "s2"}) {
        ... on KnowledgeArticle { summary lastUpdatedBy { username } } } }""", s=a["slug"])
    assert out["data"]["updateKnowledgeArticle"]["summary"] == "s2"
    out = await gql(client, viewer, """mutation($s: String!) { deleteKnowledgeArticle(slug: $s) {
        __typename ... on UserError { code } } }""", s=a["slug"])
    assert out["data"]["deleteKnowledgeArticle"] == {"__typename": "PermissionDeniedError", "code": "PERMISSION_DENIED"}
    out = await gql(client, admin, """mutation($s: String!) { deleteKnowledgeArticle(slug: $s) {
        ... on DeletedArticle { slug } } }""", s=a["slug"])
    assert out["data"]["deleteKnowledgeArticle"] == {"slug": a["slug"]}
    missing = await gql(client, viewer, '{ knowledgeArticle(slug: "no-such-article") { id } }')
    assert missing["errors"][0]["extensions"]["code"] == "ARTICLE_NOT_FOUND"


async def test_typed_validation_errors(client, editor, viewer):
    out = await gql(client, viewer, """mutation { createKnowledgeArticle(input: {title: "t", content: "c",
        articleType: RUNBOOK, category: "x"}) { __typename } }""")
    assert out["data"]["createKnowledgeArticle"]["__typename"] == "PermissionDeniedError"
    out = await gql(client, editor, """mutation($t: String!) { createKnowledgeArticle(input: {title: $t, content: "c",
        articleType: RUNBOOK, category: "x"}) { __typename ... on UserError { code field } } }""", t="x" * 201)
    assert out["data"]["createKnowledgeArticle"] == {"__typename": "ValidationError", "code": "VALIDATION_ERROR",
                                                     "field": "title"}
    out = await gql(client, viewer, """mutation { rateKnowledgeArticle(slug: "nope", rating: 3) {
        __typename ... on UserError { code } } }""")
    assert out["data"]["rateKnowledgeArticle"]["code"] == "ARTICLE_NOT_FOUND"


async def test_rate_bookmark_review_and_lists(client, viewer, editor, make_article):
    a = await make_article(category=unique("gqlcat"))
    out = await gql(client, viewer, """mutation($s: String!) { rateKnowledgeArticle(slug: $s, rating: 4, feedback: "good") {
        ... on RatingResult { rating ratingAverage ratingCount } } }""", s=a["slug"])
    assert out["data"]["rateKnowledgeArticle"] == {"rating": 4, "ratingAverage": 4.0, "ratingCount": 1}
    out = await gql(client, viewer, """mutation($s: String!) { rateKnowledgeArticle(slug: $s, rating: 9) {
        __typename ... on UserError { field } } }""", s=a["slug"])
    assert out["data"]["rateKnowledgeArticle"] == {"__typename": "ValidationError", "field": "rating"}
    out = await gql(client, viewer, """mutation($s: String!) { bookmarkKnowledgeArticle(slug: $s) {
        ... on BookmarkResult { bookmarked changed } } }""", s=a["slug"])
    assert out["data"]["bookmarkKnowledgeArticle"] == {"bookmarked": True, "changed": True}
    mine = await gql(client, viewer, "{ myBookmarks(pageSize: 100) { totalCount results { slug } } }")
    assert a["slug"] in [x["slug"] for x in mine["data"]["myBookmarks"]["results"]]
    out = await gql(client, viewer, """mutation($s: String!) { unbookmarkKnowledgeArticle(slug: $s) {
        ... on BookmarkResult { bookmarked changed } } }""", s=a["slug"])
    assert out["data"]["unbookmarkKnowledgeArticle"] == {"bookmarked": False, "changed": True}
    out = await gql(client, editor, """mutation($s: String!) { markKnowledgeArticleReviewed(slug: $s) {
        ... on KnowledgeArticle { lastReviewed nextReviewDue } } }""", s=a["slug"])
    reviewed = out["data"]["markKnowledgeArticleReviewed"]
    assert reviewed["nextReviewDue"] > reviewed["lastReviewed"]
    lst = await gql(client, viewer, """query($c: String!) { knowledgeArticles(category: $c, articleType: [RUNBOOK],
        ordering: "-view_count") { totalCount page pageSize hasNextPage results { slug } } }""", c=a["category"])
    assert lst["data"]["knowledgeArticles"]["totalCount"] == 1
    out = await gql(client, viewer, """{ popularArticles(limit: 3) { popularityScore article { slug } }
        articlesDueForReview { totalCount }
        knowledgeBaseStatistics { totalArticles byStatus averageRating usage { searches } } }""")
    assert "errors" not in out and len(out["data"]["popularArticles"]) <= 3
    assert out["data"]["knowledgeBaseStatistics"]["totalArticles"] >= 1


async def test_search_through_graphql(client, viewer, make_article, bk):
    marker = unique("gqlsearch").replace("-", "")
    a = await make_article(title=f"Redis eviction storm {marker}", category="Cache")
    await sync_search(bk)
    out = await gql(client, viewer, """query($q: String!) { searchKnowledgeBase(input: {query: $q, categories: ["Cache"],
        limit: 5}) { totalCount query filters { articleTypes categories difficultyLevels }
        pagination { limit offset hasMore } searchId
        results { relevanceScore similarityScore popularityScore matchingKeywords article { slug } } } }""",
                    q=f"redis eviction {marker}")
    res = out["data"]["searchKnowledgeBase"]
    assert res["totalCount"] == 1 and res["results"][0]["article"]["slug"] == a["slug"]
    assert res["results"][0]["matchingKeywords"] == ["redis", "eviction", marker]
    assert res["pagination"] == {"limit": 5, "offset": 0, "hasMore": False}
    assert res["filters"] == {"articleTypes": [], "categories": ["Cache"], "difficultyLevels": []}


async def test_people_resolve_with_one_users_query(client, viewer, admin, editor, make_article, bk):
    """N articles, each with author, maintainer and last editor: one MongoDB query for users."""
    cat = unique("loader")
    for i in range(6):
        await make_article(headers=admin if i % 2 else editor, category=cat)
    db = bk.mongo
    await client.get("/api/v1/incidents/", headers=viewer)  # the viewer's token is now cached
    await db.command("profile", 2)
    since = datetime.now(timezone.utc)
    try:
        out = await gql(client, viewer, """query($c: String!) { knowledgeArticles(category: $c) {
            results { author { username } maintainer { username } lastUpdatedBy { username } } } }""", c=cat)
    finally:
        await db.command("profile", 0)
    results = out["data"]["knowledgeArticles"]["results"]
    assert len(results) == 6 and all(r["author"]["username"] for r in results)
    users_queries = await db["system.profile"].count_documents(
        {"ns": f"{db.name}.users", "ts": {"$gte": since}, "op": "query"})
    assert users_queries == 1


async def test_outputs_are_camel_case_and_every_rest_filter_has_its_argument(client, editor, viewer, bk):
    cat = unique("camel")
    for cls in ("PUBLIC", "CONFIDENTIAL"):
        r = await client.post("/api/knowledge/knowledge-articles/", headers=editor, json={
            "title": unique("Camel"), "content": "replica lag runbook", "article_type": "RUNBOOK", "category": cat,
            "status": "PUBLISHED", "data_classification": cls})
        assert r.status_code == 201
    out = await gql(client, editor, """query($c: String!) { knowledgeArticles(category: $c,
        dataClassification: [PUBLIC]) { totalCount results { dataClassification } } }""", c=cat)
    assert out["data"]["knowledgeArticles"] == {"totalCount": 1, "results": [{"dataClassification": "PUBLIC"}]}
    await sync_search(bk)
    out = await gql(client, viewer, """{ searchKnowledgeBase(input: {query: "replica lag", articleTypes: [RUNBOOK],
        difficultyLevels: [INTERMEDIATE], categories: ["x"]}) {
        filters { articleTypes categories difficultyLevels } } }""")
    assert out["data"]["searchKnowledgeBase"]["filters"] == {
        "articleTypes": ["RUNBOOK"], "categories": ["x"], "difficultyLevels": ["INTERMEDIATE"]}
    out = await gql(client, viewer, """{ knowledgeBaseStatistics { mostViewed { slug viewCount ratingAverage }
        usage { searches searchesWithoutResults topSearchTerms { query count } clickThroughRate } } }""")
    usage = out["data"]["knowledgeBaseStatistics"]["usage"]
    assert usage["searches"] >= 1 and isinstance(usage["topSearchTerms"], list)


async def test_search_text_and_free_form_json_follow_the_shared_rules(client, editor, viewer):
    r = await client.post("/api/knowledge/knowledge-articles/search/", headers=viewer, json={"query": "a\u0000b"})
    assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR"
    out = await gql(client, viewer, '{ searchKnowledgeBase(input: {query: "%s"}) { totalCount } }' % ("x" * 5001))
    assert out["errors"][0]["extensions"]["code"] in ("VALIDATION_ERROR", "BAD_USER_INPUT")
    r = await client.post("/api/knowledge/knowledge-articles/", headers=editor, json={
        "title": unique("Refs"), "content": "c", "article_type": "FAQ", "category": "c",
        "external_references": [{"$where": "1"}]})
    assert r.status_code == 400 and r.json()["code"] == "INVALID_KEY"

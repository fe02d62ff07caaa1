"""Nothing about an article above a user's clearance reaches them: not through usage figures, slugs,
search totals or scores while the index lags MongoDB, nor through a 404 that differs from a missing
article's. Each hostile case sits next to the happy one."""

from __future__ import annotations

import pytest

from app.articles.models import ArticleCreate
from app.articles.service import slugify
from app.indexing import outbox
from app.users.models import Classification, Role, UserCreate
from tests.articles.conftest import BASE, sync_search
from tests.conftest import unique
from tests.incidents.test_graphql import gql
from tests.incidents.test_rest import error_shape


async def person(bk, role: Role, clearance: Classification) -> dict:
    from app.users.service import create_user, issue_token

    user = await create_user(bk, data=UserCreate(username=unique(f"{role.value}-{clearance.value.lower()}"),
                                                 role=role, clearance=clearance))
    return {"Authorization": f"Token {await issue_token(bk, user=user)}", "user": user}


def h(p: dict) -> dict:
    return {"Authorization": p["Authorization"]}


@pytest.fixture(scope="module")
async def people(bk):
    return {
        "public_viewer": await person(bk, Role.VIEWER, Classification.PUBLIC),
        "internal_viewer": await person(bk, Role.VIEWER, Classification.INTERNAL),
        "public_editor": await person(bk, Role.EDITOR, Classification.PUBLIC),
        "restricted_viewer": await person(bk, Role.VIEWER, Classification.RESTRICTED),
        "restricted_admin": await person(bk, Role.ADMIN, Classification.RESTRICTED),
    }


async def search(client, headers, **body) -> dict:
    r = await client.post(BASE + "search/", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def usage(client, headers) -> dict:
    r = await client.get(BASE + "statistics/", headers=headers)
    assert r.status_code == 200, r.text
    rest = r.json()["usage"]
    out = await gql(client, headers, """{ knowledgeBaseStatistics { usage { searches searchesWithoutResults
        topSearchTerms { query count } topZeroResultTerms { query count } views searchesWithClick clickThroughRate
        ratings bookmarks } } }""")
    camel = {"searches": "searches", "searchesWithoutResults": "searches_without_results",
             "topSearchTerms": "top_search_terms", "topZeroResultTerms": "top_zero_result_terms", "views": "views",
             "searchesWithClick": "searches_with_click", "clickThroughRate": "click_through_rate",
             "ratings": "ratings", "bookmarks": "bookmarks"}
    got = {camel[k]: v for k, v in out["data"]["knowledgeBaseStatistics"]["usage"].items()}
    assert got == rest  # one service function, one answer
    return rest


COUNTS = ("searches", "searches_without_results", "views", "searches_with_click", "ratings", "bookmarks")


def delta(before: dict, after: dict) -> dict:
    return {k: after[k] - before[k] for k in COUNTS}


def terms(u: dict) -> set[str]:
    return {t["query"] for t in u["top_search_terms"] + u["top_zero_result_terms"]}


# --- 1. usage figures ------------------------------------------------------------------------

async def test_usage_figures_count_only_people_who_see_no_more_than_the_caller(client, bk, make_article, people):
    pv, iv, pe, rv, ra = (people[k] for k in ("public_viewer", "internal_viewer", "public_editor",
                                               "restricted_viewer", "restricted_admin"))
    marker = unique("usagescope").replace("-", "")
    secret = await make_article(headers=h(ra), title=f"Acquisition {marker} codename", data_classification="RESTRICTED")
    public = await make_article(headers=h(ra), title=f"Public {marker} guide", data_classification="PUBLIC")
    await make_article(headers=h(pe), title=f"Draft {marker} plan", data_classification="PUBLIC", status="DRAFT")
    await sync_search(bk)
    before = {k: await usage(client, h(p)) for k, p in people.items()}

    # a RESTRICTED user searches (with and without results), clicks, rates and bookmarks
    secret_term, secret_zero = f"acquisition {marker} codename", f"merger{marker}target"
    found = await search(client, h(rv), query=secret_term)
    assert found["results"][0]["id"] == secret["id"]
    assert (await search(client, h(rv), query=secret_zero))["total_count"] == 0
    assert (await client.get(f"{BASE}{secret['slug']}/", params={"search_id": found["search_id"]},
                             headers=h(rv))).status_code == 200
    await client.post(f"{BASE}{secret['slug']}/rate/", json={"rating": 5}, headers=h(rv))
    await client.post(f"{BASE}{secret['slug']}/bookmark/", headers=h(rv))
    # a PUBLIC editor's search finds a draft a PUBLIC viewer may not see
    draft_term = f"draft {marker} plan"
    assert (await search(client, h(pe), query=draft_term))["total_count"] == 2  # the draft and the public one
    # a PUBLIC viewer searches, clicks and rates
    public_term = f"public {marker} guide"
    mine = await search(client, h(pv), query=public_term)
    assert (await client.get(f"{BASE}{public['slug']}/", params={"search_id": mine["search_id"]},
                             headers=h(pv))).status_code == 200
    await client.post(f"{BASE}{public['slug']}/rate/", json={"rating": 4}, headers=h(pv))

    after = {k: await usage(client, h(p)) for k, p in people.items()}
    # hostile: the PUBLIC viewer's figures move only with the PUBLIC viewer's own activity
    assert delta(before["public_viewer"], after["public_viewer"]) == {
        "searches": 1, "searches_without_results": 0, "views": 1, "searches_with_click": 1, "ratings": 1,
        "bookmarks": 0}
    assert terms(after["public_viewer"]) & {secret_term, secret_zero, draft_term} == set()
    assert public_term in terms(after["public_viewer"])
    # an INTERNAL viewer counts PUBLIC and INTERNAL viewers, never editors or RESTRICTED users
    assert delta(before["internal_viewer"], after["internal_viewer"]) == delta(before["public_viewer"],
                                                                               after["public_viewer"])
    assert secret_term not in terms(after["internal_viewer"])
    # the PUBLIC editor sees drafts, so counts their own search too, but nothing of the RESTRICTED user
    assert delta(before["public_editor"], after["public_editor"])["searches"] == 2
    assert draft_term in terms(after["public_editor"]) and secret_term not in terms(after["public_editor"])
    # the RESTRICTED viewer counts viewers up to RESTRICTED, not the editor's draft search
    assert delta(before["restricted_viewer"], after["restricted_viewer"]) == {
        "searches": 3, "searches_without_results": 1, "views": 2, "searches_with_click": 2, "ratings": 2,
        "bookmarks": 1}
    # happy: whoever sees everything counts everything
    assert delta(before["restricted_admin"], after["restricted_admin"]) == {
        "searches": 4, "searches_without_results": 1, "views": 2, "searches_with_click": 2, "ratings": 2,
        "bookmarks": 1}
    event = await bk.mongo.usage_events.find_one({"_id": found["search_id"]})
    assert (event["clearance"], event["role"]) == ("RESTRICTED", "viewer")


async def test_click_through_counts_only_the_searchers_own_clicks(client, bk, make_article, people):
    pv, iv = people["public_viewer"], people["internal_viewer"]
    marker = unique("ctr").replace("-", "")
    a = await make_article(headers=h(people["restricted_admin"]), title=f"Click {marker}",
                           data_classification="PUBLIC")
    await sync_search(bk)
    found = await search(client, h(pv), query=f"click {marker}")
    before = await usage(client, h(pv))
    # someone else's click on that search, and a made-up search id, count for nothing
    for headers, search_id in ((h(iv), found["search_id"]), (h(pv), unique("made-up"))):
        assert (await client.get(f"{BASE}{a['slug']}/", params={"search_id": search_id},
                                 headers=headers)).status_code == 200
    mid = await usage(client, h(pv))
    assert mid["searches_with_click"] == before["searches_with_click"]
    # the searcher's own click does, once however often they click
    for _ in range(2):
        await client.get(f"{BASE}{a['slug']}/", params={"search_id": found["search_id"]}, headers=h(pv))
    after = await usage(client, h(pv))
    assert after["searches_with_click"] == before["searches_with_click"] + 1


# --- 2. slugs ----------------------------------------------------------------------------------

async def test_slug_does_not_reveal_a_hidden_article_with_the_same_title(client, bk, make_article, people):
    title = unique("Quarterly Breach Review")
    hidden = await make_article(headers=h(people["restricted_admin"]), title=title, data_classification="RESTRICTED")
    pe = people["public_editor"]
    r = await client.post(BASE, json={"title": title, "content": "c", "article_type": "FAQ", "category": "c",
                                      "data_classification": "PUBLIC"}, headers=h(pe))
    assert r.status_code == 201, r.text
    mine = r.json()
    # the same shape as for a title nobody used: the title's slug and the article's own id, nothing else
    fresh = (await client.post(BASE, json={"title": unique("Never Used"), "content": "c", "article_type": "FAQ",
                                           "category": "c", "data_classification": "PUBLIC"}, headers=h(pe))).json()
    for a in (mine, fresh, hidden):
        assert a["slug"] == f"{slugify(a['title'])}-{a['id'].replace('-', '')[:8]}"
    assert mine["slug"] != hidden["slug"]
    error_shape(await client.get(f"{BASE}{hidden['slug']}/", headers=h(pe)), 404, "ARTICLE_NOT_FOUND")


async def test_same_titles_get_distinct_stable_slugs_and_old_links_keep_working(client, bk, make_article, editor):
    title = unique("Same Title")
    slugs = [(await make_article(title=title))["slug"] for _ in range(3)]
    assert len(set(slugs)) == 3 and all(s.startswith(slugify(title) + "-") for s in slugs)
    long = await make_article(title="Ünïcode — Überblick! " + "word " * 30)
    assert long["slug"].startswith("unicode-uberblick-word") and len(long["slug"]) <= 80
    # a title change keeps the slug; an article stored with a slug of the old scheme keeps its link
    a = await make_article(title=unique("Old Scheme"))
    legacy = unique("old-scheme") + "-2"
    await bk.mongo.articles.update_one({"_id": a["id"]}, {"$set": {"slug": legacy}})
    r = await client.patch(f"{BASE}{legacy}/", json={"title": "Renamed"}, headers=editor)
    assert r.status_code == 200 and r.json()["slug"] == legacy
    assert (await client.get(f"{BASE}{legacy}/", headers=editor)).json()["title"] == "Renamed"


# --- 3. search while the index lags MongoDB ----------------------------------------------------

async def lag(bk, article_id: str, **fields) -> None:
    """Change an article in MongoDB only: the index still has the old version, as it does between a
    write and its index sync (the outbox entry is written later, by `catch_up`)."""
    await bk.mongo.articles.update_one({"_id": article_id}, {"$set": fields})


async def catch_up(bk, *article_ids: str) -> None:
    for i in article_ids:
        await outbox.record(bk, "articles", i)
    await sync_search(bk)


def answer(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "search_id"}


async def test_search_totals_count_only_what_mongodb_lets_the_caller_see(client, bk, make_article, people):
    pv = people["public_viewer"]
    marker = unique("raised").replace("-", "")
    a = await make_article(headers=h(people["restricted_admin"]), title=f"Runbook {marker}",
                           data_classification="PUBLIC")
    await sync_search(bk)
    assert (await search(client, h(pv), query=marker))["total_count"] == 1
    await lag(bk, a["id"], data_classification="RESTRICTED")
    try:
        lagging = await search(client, h(pv), query=marker)
        assert lagging["results"] == [] and lagging["total_count"] == 0
        assert lagging["pagination"]["has_more"] is False
        out = await gql(client, h(pv), """query($q: String!) { searchKnowledgeBase(input: {query: $q}) {
            totalCount pagination { hasMore } results { article { id } } } }""", q=marker)
        assert out["data"]["searchKnowledgeBase"] == {"totalCount": 0, "pagination": {"hasMore": False},
                                                      "results": []}
        event = await bk.mongo.usage_events.find_one({"_id": lagging["search_id"]})
        assert event["result_count"] == 0  # a zero-result search, in the figures too
        # the admin still finds it
        assert (await search(client, h(people["restricted_admin"]), query=marker))["total_count"] == 1
    finally:
        await catch_up(bk, a["id"])
    assert answer(await search(client, h(pv), query=marker)) == answer(lagging)


async def test_scores_ignore_a_hidden_article_the_index_still_has(client, bk, make_article, people):
    """The better match, just unpublished, must not lower the visible article's relevance or feed
    the similarity: the answer is the one the caller gets once the index has caught up."""
    pv = people["public_viewer"]
    marker = unique("ghost").replace("-", "")
    admin = h(people["restricted_admin"])
    best = await make_article(headers=admin, title=f"{marker} {marker} failover", data_classification="PUBLIC",
                              content=f"{marker} failover steps, {marker} again", category="Secret")
    weaker = await make_article(headers=admin, title="Failover notes", data_classification="PUBLIC",
                                content=f"mentions {marker} once", category="Ops")
    await sync_search(bk)
    await lag(bk, best["id"], status="DRAFT")
    try:
        lagging = await search(client, h(pv), query=f"{marker} failover")
        assert [x["id"] for x in lagging["results"]] == [weaker["id"]]
        assert lagging["results"][0]["relevance_score"] == 1.0
    finally:
        await catch_up(bk, best["id"])
    synced = await search(client, h(pv), query=f"{marker} failover")
    assert answer(synced) == answer(lagging)


async def test_pages_and_totals_past_the_candidate_window_skip_hidden_articles(client, bk, make_article, people):
    """More matches than the re-ranking window, the two best of them hidden in MongoDB but not yet in
    the index: full pages, exact totals, and the answers the caller gets once the index catches up."""
    from app.articles import service
    from app.articles.ranking import CANDIDATES

    pv, ra = people["public_viewer"], people["restricted_admin"]
    marker = unique("window").replace("-", "")
    n = CANDIDATES + 3
    for i in range(n):  # distinct scores: the order never rests on ties
        await service.create_article(bk, user=ra["user"], data=ArticleCreate(
            title=f"Window {i}", content=f"{marker} " * (1 + i % 40) + "x " * i, article_type="FAQ",
            category="c", status="PUBLISHED", data_classification="PUBLIC"))
    hidden = [await make_article(headers=h(ra), title=f"{marker} {marker} top {i}", content=f"{marker} {marker}",
                                 data_classification="PUBLIC") for i in range(2)]
    await sync_search(bk)
    pages = ({"limit": CANDIDATES}, {"limit": CANDIDATES, "offset": CANDIDATES}, {"limit": 5, "offset": n - 2})
    for x in hidden:
        await lag(bk, x["id"], data_classification="RESTRICTED")
    try:
        lagging = [await search(client, h(pv), query=marker, **p) for p in pages]
    finally:
        await catch_up(bk, *(x["id"] for x in hidden))
    first, second, last = lagging
    assert [p["total_count"] for p in lagging] == [n, n, n]
    assert [len(p["results"]) for p in lagging] == [CANDIDATES, 3, 2]
    assert [p["pagination"]["has_more"] for p in lagging] == [True, False, False]
    assert not {x["id"] for p in lagging for x in p["results"]} & {x["id"] for x in hidden}
    synced = [await search(client, h(pv), query=marker, **p) for p in pages]
    assert [answer(p) for p in synced] == [answer(p) for p in lagging]


# --- 4. a hidden article is answered exactly like a missing one ---------------------------------

def _same(body: dict, slug: str) -> dict:
    return {**body, "error": body["error"].replace(slug, "<slug>")}


async def test_hidden_articles_answer_like_missing_ones_everywhere(client, make_article, editor, viewer, admin):
    """The CONFIDENTIAL editor on a RESTRICTED article, the viewer on a draft: every route, REST and
    GraphQL, answers as for a slug that never existed."""
    restricted = await make_article(headers=admin, data_classification="RESTRICTED")
    draft = await make_article(status="DRAFT")
    missing = unique("no-such-article")
    calls = [("GET", "", None), ("PATCH", "", {"summary": "x"}), ("DELETE", "", None),
             ("PUT", "", {"title": "t", "content": "c", "article_type": "FAQ", "category": "c"}),
             ("POST", "rate/", {"rating": 3}), ("POST", "bookmark/", None), ("DELETE", "bookmark/", None),
             ("POST", "mark_reviewed/", None)]
    for headers, hidden in ((editor, restricted["slug"]), (viewer, draft["slug"])):
        for method, tail, body in calls:
            answers = []
            for slug in (hidden, missing):
                r = await client.request(method, f"{BASE}{slug}/{tail}", json=body, headers=headers)
                answers.append((r.status_code, _same(r.json(), slug)))
            assert answers[0] == answers[1], (method, tail, answers)
            assert answers[0][0] in (403, 404)  # 403 only where the role alone forbids it (viewer edits)
        for mutation in ('updateKnowledgeArticle(slug: $s, input: {summary: "x"})', "deleteKnowledgeArticle(slug: $s)",
                         "rateKnowledgeArticle(slug: $s, rating: 3)", "bookmarkKnowledgeArticle(slug: $s)",
                         "unbookmarkKnowledgeArticle(slug: $s)", "markKnowledgeArticleReviewed(slug: $s)"):
            outs = []
            for slug in (hidden, missing):
                out = await gql(client, headers, "mutation($s: String!) { r: %s { __typename "
                                "... on UserError { code message field details } } }" % mutation, s=slug)
                outs.append({**out["data"]["r"], "message": out["data"]["r"]["message"].replace(slug, "<slug>")})
            assert outs[0] == outs[1], (mutation, outs)
        outs = []
        for slug in (hidden, missing):
            out = await gql(client, headers, "query($s: String!) { knowledgeArticle(slug: $s) { id } }", s=slug)
            outs.append((out["data"], out["errors"][0]["message"].replace(slug, "<slug>"),
                         out["errors"][0]["extensions"]))
        assert outs[0] == outs[1]


async def test_search_offset_stays_within_the_index_window(client, viewer):
    """offset + limit never passes the 10,000 hits an index answers, so a page is never cut short
    while `has_more` says there is more."""
    ok = await client.post(BASE + "search/", json={"query": "x", "offset": 9_900, "limit": 100}, headers=viewer)
    assert ok.status_code == 200, ok.text
    error_shape(await client.post(BASE + "search/", json={"query": "x", "offset": 9_901}, headers=viewer), 400,
                "VALIDATION_ERROR")


@pytest.mark.xfail(strict=True, reason="known, not fixed: the search engine's BM25 statistics (document "
                   "frequencies, lengths) span every indexed article, hidden ones included; see docs/decisions.md")
async def test_relevance_does_not_depend_on_hidden_articles(client, bk, make_article, people):
    """Two visible articles, one per query word; RESTRICTED articles full of one of the words then
    change the visible articles' relevance, telling a PUBLIC viewer that hidden articles use it."""
    pv, admin = people["public_viewer"], h(people["restricted_admin"])
    marker = unique("bm25").replace("-", "")
    a, b = f"alpha{marker}", f"beta{marker}"
    for word in (a, b):
        await make_article(headers=admin, title=f"Doc {word}", content="x", data_classification="PUBLIC")
    await sync_search(bk)
    before = await search(client, h(pv), query=f"{a} {b}")
    for i in range(10):
        await make_article(headers=admin, title=f"Hidden {a} {i}", content=a, data_classification="RESTRICTED")
    await sync_search(bk)
    after = await search(client, h(pv), query=f"{a} {b}")
    assert answer(after) == answer(before)

"""Knowledge articles link to runbooks and the automation that runs them (`runbook_links`: name, URL, kind),
through REST and GraphQL; a link is http(s) with no credentials, and an article holds at most 20."""

from __future__ import annotations

from tests.articles.conftest import BASE
from tests.conftest import unique
from tests.incidents.test_graphql import gql

LINKS = [{"name": "Resize the pool", "url": "https://runbooks.example.com/db/pool-resize", "kind": "AUTOMATION"},
         {"name": "Pool dashboard", "url": "http://grafana.example.com/d/pool", "kind": "DASHBOARD"}]


async def test_runbook_links_are_written_read_and_replaced(client, editor, viewer, make_article):
    a = await make_article(runbook_links=LINKS)
    assert a["runbook_links"] == LINKS
    assert (await client.get(f"{BASE}{a['slug']}/", headers=viewer)).json()["runbook_links"] == LINKS
    r = await client.patch(f"{BASE}{a['slug']}/", headers=editor,
                           json={"runbook_links": [{"name": "Only", "url": "https://rb.example.com/x"}]})
    assert r.status_code == 200 and r.json()["runbook_links"] == [
        {"name": "Only", "url": "https://rb.example.com/x", "kind": "RUNBOOK"}]
    plain = await make_article()
    assert plain["runbook_links"] == []


async def test_bad_runbook_links_are_400s(client, editor):
    for links in ([{"name": "x", "url": "javascript:alert(1)"}], [{"name": "x", "url": "ftp://files.example.com/a"}],
                  [{"name": "x", "url": "https://user:pw@rb.example.com/"}], [{"name": "x", "url": "not a url"}],
                  [{"name": "", "url": "https://rb.example.com/"}], [{"name": "x", "url": "https://rb.example.com/",
                                                                     "kind": "MAGIC"}],
                  [{"name": "x", "url": "https://rb.example.com/" + "a" * 2100}],
                  [{"name": f"n{i}", "url": f"https://rb.example.com/{i}"} for i in range(21)]):
        r = await client.post(BASE, headers=editor, json={"title": unique("Links"), "content": "c",
                                                          "article_type": "RUNBOOK", "category": "General",
                                                          "runbook_links": links})
        assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR", (links[:1], r.text)


async def test_graphql_writes_and_reads_runbook_links(client, editor):
    made = await gql(client, editor, """mutation($input: CreateKnowledgeArticleInput!) {
        createKnowledgeArticle(input: $input) { __typename
        ... on KnowledgeArticle { slug runbookLinks { name url kind } } ... on ValidationError { code field } } }""",
                     input={
        "title": unique("Linked"), "content": "c", "articleType": "RUNBOOK", "category": "General",
        "runbookLinks": [{"name": "Resize", "url": "https://rb.example.com/resize", "kind": "AUTOMATION"}]})
    article = made["data"]["createKnowledgeArticle"]
    assert article["runbookLinks"] == [{"name": "Resize", "url": "https://rb.example.com/resize", "kind": "AUTOMATION"}]
    bad = await gql(client, editor, """mutation($slug: String!) { updateKnowledgeArticle(slug: $slug,
        input: {runbookLinks: [{name: "x", url: "file:///etc/passwd"}]}) { __typename } }""", slug=article["slug"])
    assert bad["data"]["updateKnowledgeArticle"]["__typename"] == "ValidationError"

"""Publishing a postmortem writes (or updates) its POSTMORTEM_SUMMARY article in the knowledge base."""

from __future__ import annotations

import uuid

from app.users.models import Classification, Role
from tests.articles.conftest import BASE as ARTICLES, sync_search
from tests.articles.test_classification import person
from tests.incidents.test_graphql import gql
from tests.postmortems.test_rest import BASE, create_pm, new_incident


async def publish(client, editor, admin, pm_id: str) -> dict:
    for action, who in (("submit_for_review", editor), ("approve", admin), ("publish", editor)):
        r = await client.post(f"{BASE}{pm_id}/{action}/", headers=who)
        assert r.status_code == 200, (action, r.text)
    return r.json()


async def search(client, headers, query: str) -> list[str]:
    r = await client.post(ARTICLES + "search/", json={"query": query}, headers=headers)
    assert r.status_code == 200, r.text
    return [x["slug"] for x in r.json()["results"]]


async def test_publish_creates_one_article_then_updates_it(client, editor, admin, viewer, bk):
    tag = uuid.uuid4().hex[:10]
    inc = await new_incident(client, editor, severity="HIGH", category="Database")
    pm = await create_pm(client, editor, inc, title=f"Postmortem: pool exhaustion {tag}",
                         executive_summary="The pool ran dry.", root_cause_analysis=f"Pool size 10 too small {tag}x",
                         impact_assessment="500 users", lessons_learned="Alert on pool usage",
                         affected_services=["database", "api"],
                         action_items=[{"title": "Raise pool size", "priority": "HIGH"}])
    assert pm["knowledge_article"] is None
    done = await publish(client, editor, admin, pm["id"])
    link = done["knowledge_article"]
    assert done["status"] == "PUBLISHED" and set(link) == {"id", "slug"}
    art = (await client.get(f"{ARTICLES}{link['slug']}/", headers=viewer)).json()
    assert art["id"] == link["id"] and art["article_type"] == "POSTMORTEM_SUMMARY" and art["status"] == "PUBLISHED"
    assert art["title"] == pm["title"] and art["category"] == "Database"
    assert art["data_classification"] == "INTERNAL" and art["related_services"] == ["database", "api"]
    assert art["source_postmortems"] == [pm["id"]] and art["related_incidents"] == [inc["id"]]
    for text in ("The pool ran dry.", "Pool size 10 too small", "500 users", "Alert on pool usage", "Raise pool size"):
        assert text in art["content"]
    got = await gql(client, viewer, "query($id: ID!) { postmortem(id: $id) { knowledgeArticleId knowledgeArticleSlug } }",
                    id=pm["id"])
    assert got["data"]["postmortem"] == {"knowledgeArticleId": link["id"], "knowledgeArticleSlug": link["slug"]}

    # published again (after an edit and re-approval): the same article, updated
    await bk.mongo.postmortems.update_one({"_id": pm["id"]}, {"$set": {"status": "DRAFT"}})
    r = await client.patch(f"{BASE}{pm['id']}/", headers=editor, json={"lessons_learned": f"Size pools {tag}y"})
    assert r.status_code == 200
    again = await publish(client, editor, admin, pm["id"])
    assert again["knowledge_article"] == link
    arts = await bk.mongo.articles.find({"source_postmortems": pm["id"]}).to_list(None)
    assert len(arts) == 1 and f"Size pools {tag}y" in arts[0]["content"]
    assert "Alert on pool usage" not in arts[0]["content"]


async def test_article_follows_the_postmortem_classification(client, editor, admin, viewer, bk):
    public_viewer = await person(bk, Role.VIEWER, Classification.PUBLIC)
    tag = uuid.uuid4().hex[:10]
    inc = await new_incident(client, editor, severity="HIGH")
    internal = await create_pm(client, editor, inc, title=f"Internal lesson {tag}", lessons_learned=f"zq{tag} lesson")
    secret = await create_pm(client, editor, inc, title=f"Confidential lesson {tag}", data_classification="CONFIDENTIAL",
                             lessons_learned=f"zq{tag} lesson")
    a = (await publish(client, editor, admin, internal["id"]))["knowledge_article"]
    b = (await publish(client, editor, admin, secret["id"]))["knowledge_article"]
    await sync_search(bk)
    assert a["slug"] in await search(client, viewer, f"zq{tag}")
    assert b["slug"] not in await search(client, viewer, f"zq{tag}")
    assert set(await search(client, editor, f"zq{tag}")) >= {a["slug"], b["slug"]}
    assert await search(client, {"Authorization": public_viewer["Authorization"]}, f"zq{tag}") == []
    assert (await client.get(f"{ARTICLES}{b['slug']}/", headers=viewer)).status_code == 404
    art = (await client.get(f"{ARTICLES}{b['slug']}/", headers=editor)).json()
    assert art["data_classification"] == "CONFIDENTIAL" and art["category"] == "Postmortem"


async def test_publish_refused_leaves_no_article(client, editor, admin, bk):
    inc = await new_incident(client, editor)
    pm = await create_pm(client, editor, inc)
    r = await client.post(f"{BASE}{pm['id']}/publish/", headers=editor)
    assert r.status_code == 409
    assert await bk.mongo.articles.count_documents({"source_postmortems": pm["id"]}) == 0


async def test_an_article_lost_between_publication_and_writing_is_written_by_the_sweep(client, editor, admin, bk):
    """The publication and its article are two steps: a crash (or an outage) between them leaves the
    postmortem PUBLISHED with `article_pending`, and the worker's sweep writes the article later."""
    from datetime import timedelta

    from app.postmortems import service
    from app.timefmt import utcnow

    inc = await new_incident(client, editor, severity="HIGH")
    pm = await create_pm(client, editor, inc, title=f"Postmortem: lost article {uuid.uuid4().hex[:8]}",
                         root_cause_analysis="Disk filled up")
    done = await publish(client, editor, admin, pm["id"])
    stored = await bk.mongo.postmortems.find_one({"_id": pm["id"]})
    assert "article_pending" not in stored and stored["published_by"]
    # the crash: the article never got written
    await bk.mongo.articles.delete_one({"_id": done["knowledge_article"]["id"]})
    await bk.mongo.postmortems.update_one({"_id": pm["id"]}, {"$set": {"article_pending": True},
                                                              "$unset": {"knowledge_article": ""}})
    assert await service.sync_pending_articles(bk) == 0  # too recent: a publication may still be writing it
    await bk.mongo.postmortems.update_one({"_id": pm["id"]},
                                          {"$set": {"published_at": utcnow() - timedelta(minutes=1)}})
    assert await service.sync_pending_articles(bk) >= 1
    stored = await bk.mongo.postmortems.find_one({"_id": pm["id"]})
    assert "article_pending" not in stored and stored["knowledge_article"]["id"]
    article = await bk.mongo.articles.find_one({"_id": stored["knowledge_article"]["id"]})
    assert article["source_postmortems"] == [pm["id"]] and "Disk filled up" in article["content"]
    assert article["author"] == stored["published_by"]


async def test_a_public_postmortem_of_a_secret_incident_copies_nothing_of_it(client, editor, admin, bk):
    """What an article copies takes its source's classification or stays out: a PUBLIC postmortem of a
    CONFIDENTIAL incident publishes a PUBLIC article without the incident's category or id."""
    public_viewer = await person(bk, Role.VIEWER, Classification.PUBLIC)
    inc = await new_incident(client, editor, severity="HIGH", category="Secret category",
                             data_classification="CONFIDENTIAL")
    pm = await create_pm(client, editor, inc, title=f"Public lesson {uuid.uuid4().hex[:8]}",
                         data_classification="PUBLIC")
    art = (await publish(client, editor, admin, pm["id"]))["knowledge_article"]
    r = await client.get(f"{ARTICLES}{art['slug']}/", headers={"Authorization": public_viewer["Authorization"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data_classification"] == "PUBLIC" and body["category"] == "Postmortem"
    assert body["related_incidents"] == [] and inc["id"] not in r.text and "Secret category" not in r.text

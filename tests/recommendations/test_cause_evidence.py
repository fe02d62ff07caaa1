"""The cause as evidence: how far a past incident's recorded root cause means what this incident says is
going on (`cause`), and an article's title and summary likewise (KNOWLEDGE_ARTICLE `semantic`, never filled
before), measured for every candidate, stored in confidence_features for the refit and shown as a matching
factor; the prior gives them no weight until ratings do. Data built here, in a namespace of its own."""

from __future__ import annotations

import uuid

import pytest

from app.recommendations import engine, meaning
from tests.recommendations.test_rest import BASE, INCIDENTS, sync

ARTICLES = "/api/knowledge/knowledge-articles/"


def test_the_account_is_the_recorded_cause_else_the_title():
    assert meaning.account({"title": "Orders API slow", "root_cause": "The connection pool was exhausted."}) == \
        "The connection pool was exhausted."
    # a placeholder is not a cause: the title stands in
    assert meaning.account({"title": "Orders API slow", "root_cause": "Unknown"}) == "Orders API slow"
    assert meaning.recorded_cause({"root_cause": "The public postmortem does not say what restored service"}) == ""
    assert meaning.recorded_cause({"root_cause": "A deploy shipped a bad config."}) == "A deploy shipped a bad config."


def test_a_refit_learns_the_cause_when_ratings_say_it_matters():
    """The prior gives `cause` no weight (the bench's held-out ratings did not support one); ratings in which
    the agreeing cause is what helps teach the refit a weight, and the refit separates better than the prior."""
    import math
    import random

    from app.recommendations import calibration

    rnd = random.Random(11)
    for t in ("SIMILAR_INCIDENT", "SOLUTION", "EXPERT"):
        assert "cause" in engine.FEATURES and engine.DEFAULT_MODELS[t]["w"]["cause"] == 0.0
    samples = []
    for _ in range(600):
        f = {"similarity": rnd.uniform(0.3, 0.8), "semantic": rnd.uniform(0.1, 0.6), "lexical": rnd.uniform(0.1, 0.6),
             "services": 0.0, "category": 1.0, "fix": 1.0, "near_duplicate": 0.0, "cause": rnd.uniform(0.0, 0.6),
             "feedback": 0.0}
        samples.append((f, int(rnd.random() < 1 / (1 + math.exp(-(-3.0 + 9.0 * f["cause"]))))))
    prior = engine.DEFAULT_MODELS["SIMILAR_INCIDENT"]
    got = calibration.fit(samples, prior)
    assert got["w"]["cause"] > 3.0, got
    before = calibration.auc([(engine.confidence(f, prior), y) for f, y in samples])
    after = calibration.auc([(engine.confidence(f, got), y) for f, y in samples])
    assert after > before + 0.1, (before, after)


@pytest.fixture(scope="module")
async def case(client, bk, admin, editor):
    tag = uuid.uuid4().hex[:6]
    ns = f"cause{tag}"
    services = [f"orders-api-{tag}"]

    async def incident(body: dict, *, resolve: dict | None = None) -> dict:
        r = await client.post(INCIDENTS, headers=admin, json={"namespace": ns, "severity": "MEDIUM",
                                                              "category": "Database", **body})
        assert r.status_code == 201, r.text
        doc = r.json()
        if resolve:
            r = await client.post(f"{INCIDENTS}{doc['name']}/resolve/", headers=admin, json=resolve)
            assert r.status_code == 200, r.text
        return doc

    title = "Orders API requests time out for most customers"
    same_cause = await incident({"title": title, "affected_services": services}, resolve={
        "root_cause": "Long-running report queries held every database connection, exhausting the connection pool.",
        "resolution": "Killed the report queries and moved reports to a read replica."})
    other_cause = await incident({"title": title, "affected_services": services}, resolve={
        "root_cause": "A faulty load balancer health check marked every backend as down after a firmware upgrade.",
        "resolution": "Rolled the load balancer firmware back to the previous version."})
    runbook = (await client.post(ARTICLES, headers=editor, json={
        "title": f"Runbook: database connection pool exhausted {tag}", "article_type": "RUNBOOK",
        "category": "Database", "status": "PUBLISHED", "summary": "When every database connection is taken: "
        "find the queries holding connections, kill them, cap the pool per client.",
        "content": "Orders API requests time out when the connection pool is exhausted: list the sessions, kill "
                   "the long-running queries, then cap the pool per client."})).json()
    assert "id" in runbook, runbook
    new = await incident({"title": title, "affected_services": services, "status": "MITIGATED",
                          "root_cause": "Slow analytics queries kept all connections of the pool busy, so the API "
                                        "could not get a database connection."})
    await sync(bk)
    return {"new": new, "same": same_cause, "other": other_cause, "runbook": runbook}


async def _generate(client, bk, editor, incident_id: str, types: list[str]) -> list[dict]:
    """Generated through the API; the stored documents (with their `confidence_features`) returned."""
    r = await client.post(f"{BASE}generate_for_incident/", headers=editor, json={
        "incident_id": incident_id, "recommendation_types": types, "max_recommendations": 10,
        "min_confidence": 0.0, "force": True})
    assert r.status_code in (200, 201), r.text
    ids = [x["id"] for x in r.json()["recommendations"]]
    assert ids, r.text
    return await bk.mongo.recommendations.find({"_id": {"$in": ids}}).to_list(None)


async def test_the_agreeing_cause_is_measured_stored_and_shown(client, bk, editor, case):
    recs = await _generate(client, bk, editor, case["new"]["id"], ["SIMILAR_INCIDENT", "SOLUTION"])
    for kind in ("SIMILAR_INCIDENT", "SOLUTION"):
        by = {r["related_incident"]: r for r in recs if r["recommendation_type"] == kind}
        same, other = by[case["same"]["id"]], by[case["other"]["id"]]
        assert same["confidence_features"]["cause"] > other["confidence_features"]["cause"] + 0.1, (same, other)
        factor = next(f for f in same["matching_factors"] if f["factor"] == "cause")
        assert factor["value"] == same["confidence_features"]["cause"] and "root cause" in factor["detail"]


async def test_an_articles_meaning_is_measured(client, bk, editor, case):
    recs = await _generate(client, bk, editor, case["new"]["id"], ["KNOWLEDGE_ARTICLE"])
    mine = next(r for r in recs if r.get("knowledge_article") == case["runbook"]["id"])
    assert mine["confidence_features"]["semantic"] > 0.3, mine["confidence_features"]
    assert any(f["factor"] == "semantic" for f in mine["matching_factors"])

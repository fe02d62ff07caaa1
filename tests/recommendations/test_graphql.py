"""Recommendations through GraphQL: the same service as REST, typed errors, Incident.recommendations in one query."""

from __future__ import annotations

from tests.incidents.test_graphql import gql
from tests.recommendations.test_rest import world  # noqa: F401 - the shared module fixture

GENERATE = """mutation($input: GenerateRecommendationsInput!) { generateRecommendations(input: $input) {
  __typename ... on GeneratedRecommendations { recommendations { id recommendationType title confidenceScore
    confidenceLevel similarityScore reasoning matchingFactors { factor weight value detail } suggestedActions
    timeToImplementSeconds relatedIncident { id name } knowledgeArticle { id title } suggestedExpert { username } } }
  ... on UserError { code message field } } }"""


async def test_generate_query_apply_rate(client, editor, viewer, world, bk):  # noqa: F811
    inc = world["new"]["id"]
    out = await gql(client, editor, GENERATE, input={"incidentId": inc, "maxRecommendations": 12,
                                                     "recommendationTypes": ["SIMILAR_INCIDENT", "SOLUTION",
                                                                             "KNOWLEDGE_ARTICLE", "EXPERT"]})
    recs = out["data"]["generateRecommendations"]["recommendations"]
    types = {r["recommendationType"] for r in recs}
    assert {"SIMILAR_INCIDENT", "SOLUTION", "KNOWLEDGE_ARTICLE", "EXPERT"} <= types, types
    sim = next(r for r in recs if r["recommendationType"] == "SIMILAR_INCIDENT")
    assert sim["relatedIncident"]["id"] and sim["matchingFactors"][0]["factor"] == "text"
    art = next(r for r in recs if r["recommendationType"] == "KNOWLEDGE_ARTICLE")
    assert art["knowledgeArticle"]["title"]
    sol = next(r for r in recs if r["recommendationType"] == "SOLUTION")
    assert sol["timeToImplementSeconds"] == 5400 and sol["suggestedActions"]
    assert next(r for r in recs if r["recommendationType"] == "EXPERT")["suggestedExpert"]["username"] == \
        world["expert"].username

    # viewers: read, not generate; typed errors
    out = await gql(client, viewer, GENERATE, input={"incidentId": inc})
    assert out["data"]["generateRecommendations"]["code"] == "PERMISSION_DENIED"
    out = await gql(client, editor, GENERATE, input={"incidentId": inc, "maxRecommendations": 0})
    assert out["data"]["generateRecommendations"]["__typename"] == "ValidationError"

    apply = """mutation($id: ID!) { applyRecommendation(id: $id) { __typename
      ... on Recommendation { isApplied appliedBy { username } } ... on UserError { code } } }"""
    out = await gql(client, editor, apply, id=sol["id"])
    assert out["data"]["applyRecommendation"]["isApplied"] is True
    rate = """mutation($id: ID!, $r: Int!) { rateRecommendation(id: $id, rating: $r) { __typename
      ... on Recommendation { effectivenessRating } ... on UserError { code field } } }"""
    assert (await gql(client, editor, rate, id=sol["id"], r=4))["data"]["rateRecommendation"]["effectivenessRating"] == 4
    assert (await gql(client, editor, rate, id=sol["id"], r=9))["data"]["rateRecommendation"]["__typename"] == \
        "ValidationError"
    out = await gql(client, viewer, apply, id="no-such-id")
    assert out["data"]["applyRecommendation"]["code"] == "RECOMMENDATION_NOT_FOUND"

    q = """query($inc: ID!) { recommendations(incident: $inc, recommendationType: [SOLUTION], ordering: "-confidence_score")
      { totalCount results { id isApplied } }
      incident(id: $inc) { recommendations(limit: 3) { id confidenceScore } }
      recommendationStatistics { totalRecommendations appliedCount byType } }"""
    data = (await gql(client, editor, q, inc=inc))["data"]
    assert data["recommendations"]["totalCount"] >= 1
    top = data["incident"]["recommendations"]
    assert len(top) == 3 and [r["confidenceScore"] for r in top] == sorted([r["confidenceScore"] for r in top],
                                                                           reverse=True)
    assert data["recommendationStatistics"]["appliedCount"] >= 1
    out = await gql(client, editor, "query($inc: ID!) { incident(id: $inc) { recommendations(limit: 51) { id } } }",
                    inc=inc)
    assert out["errors"][0]["extensions"]["code"] == "VALIDATION_ERROR"


async def test_incident_lists_load_recommendations_in_one_query(client, editor, world, bk):  # noqa: F811
    """A page of incidents with their recommendations: one recommendations query, however many incidents."""
    await bk.mongo.command("profile", 2)
    try:
        q = """{ incidents(pageSize: 20) { results { id recommendations(limit: 2) { id } } } }"""
        before = await bk.mongo.system.profile.count_documents({"ns": f"{bk.mongo.name}.recommendations"})
        out = await gql(client, editor, q)
        assert "errors" not in out, out
        after = await bk.mongo.system.profile.count_documents({"ns": f"{bk.mongo.name}.recommendations"})
    finally:
        await bk.mongo.command("profile", 0)
    assert after - before == 1

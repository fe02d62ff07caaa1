"""The ranking formulas as pure functions."""

from __future__ import annotations

import math

from app.articles.ranking import cosine, matching_keywords, query_profile, rerank, tfidf, topic_affinity
from app.settings import Settings
from indexers import articles as articles_index


def test_tfidf_is_unit_length_and_sublinear():
    vec = tfidf({"disk": 4, "full": 1}, {"disk": 1.0, "full": 1.0})
    assert math.isclose(sum(w * w for w in vec.values()), 1.0)
    assert vec["disk"] / vec["full"] == 1 + math.log(4)
    assert tfidf({}, {}) == {}


def test_cosine_bounds():
    a = {"x": 1.0}
    assert cosine(a, a) == 1.0 and cosine(a, {"y": 1.0}) == 0.0 and cosine({}, a) == 0.0


def test_query_profile_moves_towards_the_best_matches():
    q = {"oom": 1.0}
    profile = query_profile(q, [{"memory": 1.0}, {"memory": 0.5, "oom": 0.5}], beta=0.75)
    assert profile["oom"] > 1.0 and math.isclose(profile["memory"], 0.75 * 0.75)
    # an article about memory but without the query's word now has some similarity
    assert cosine(profile, {"memory": 1.0}) > 0


def test_topic_affinity_shares_sum_to_one():
    t = topic_affinity([("Database", 1.0), ("Database", 0.5), ("Network", 0.5)])
    assert t == {"Database": 0.75, "Network": 0.25}
    assert topic_affinity([]) == {}


def test_rerank_blends_the_three_scores():
    hits = [{"_id": "a", "_score": 10.0, "_source": {"terms": [["disk", 2], ["full", 1]]}},
            {"_id": "b", "_score": 5.0, "_source": {"terms": [["disk", 1], ["nois", 9]]}},
            {"_id": "gone", "_score": 4.0, "_source": {"terms": [["disk", 1]]}}]
    docs = {"a": {"_id": "a", "category": "Infra", "popularity_score": 0.1},
            "b": {"_id": "b", "category": "Infra", "popularity_score": 1.0}}
    words = [("disk", ["disk"]), ("full", ["full"]), ("the", [])]
    only_popularity = Settings(ranking_weight_relevance=0, ranking_weight_similarity=0, ranking_weight_popularity=1)
    ranked = rerank(hits, words, docs, only_popularity)
    assert [r["doc"]["_id"] for r in ranked] == ["b", "a"]  # "gone" has no MongoDB document: dropped
    a = next(r for r in ranked if r["doc"]["_id"] == "a")
    assert a["relevance_score"] == 1.0 and matching_keywords(words, articles_index.stored_terms(hits[0])) == \
        ["disk", "full"]
    only_relevance = Settings(ranking_weight_relevance=1, ranking_weight_similarity=0, ranking_weight_popularity=0)
    assert [r["doc"]["_id"] for r in rerank(hits, words, docs, only_relevance)] == ["a", "b"]
    for r in ranked:
        assert all(0 <= r[k] <= 1 for k in ("relevance_score", "similarity_score", "popularity_score"))

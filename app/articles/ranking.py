"""Knowledge-base search ranking and article popularity (the formulas are in docs/domains/knowledge-base.md).

    relevance  = the article's full-text score / the best score among the candidates   (0-1)
    similarity = (1 - g - h) cosine(query profile, article) + g topic affinity
                 + h meaning                                                           (0-1)
                 profile: the query's TF-IDF vector plus the centroid of its 5 best matches
                 (Rocchio feedback); topic affinity: the share of the relevance of the
                 query's 20 best matches that falls in the article's category; meaning: the
                 cosine of the query's and the article's sentence embeddings, clipped at 0
                 (an article not embedded yet: h goes to the term cosine)
    popularity = 0.45 views + 0.30 rating + 0.15 bookmarks + 0.10 freshness             (0-1)
    final      = w_r relevance + w_s similarity + w_p popularity   (weights from settings)
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from datetime import datetime
from typing import Any, Mapping

import numpy as np

from app.activity.service import SEARCH, record_audit, record_usage
from app.articles import embeddings as article_embeddings
from app.articles.models import ArticleStatus, SearchInput
from app.articles.service import search_visibility, visibility
from app.backends import Backends
from app.embeddings.model import matrix_from_bytes
from app.patterns import wording
from app.recent import Recent
from app.settings import Settings
from app.timefmt import utcnow
from app.users.models import User
from indexers import articles as articles_index

# popularity parameters
VIEWS_SATURATION = 10_000      # this many views (or more) scores 1.0; log-scaled below
BOOKMARKS_SATURATION = 100     # likewise for bookmarks
PRIOR_MEAN, PRIOR_WEIGHT = 3.0, 5  # Bayesian average: 5 phantom ratings of 3 stars
FRESHNESS_HALF_LIFE_DAYS = 180
POPULARITY_WEIGHTS = {"views": 0.45, "rating": 0.30, "bookmarks": 0.15, "freshness": 0.10}

SCORE_KEYS = ("similarity_score", "relevance_score", "popularity_score", "matching_keywords")
CANDIDATES = 100               # re-ranking window (at least offset + limit)
PRF_DOCS, PRF_BETA = 5, 0.75   # pseudo-relevance feedback: the best 5 matches, Rocchio beta
TOPIC_DOCS = 20                # the best matches whose categories describe the query's topic
MAX_WINDOW = 10_000            # OpenSearch's default index.max_result_window
MAX_WIDENINGS = 8              # re-queries past hits MongoDB hides (only while the index lags)
# what the re-ranking reads of a candidate (its category, its vector); the page's articles are read whole
CANDIDATE_FIELDS = ("category", "embedding", "embedding_model")
MATCH_FIELDS = "hits.total,hits.hits._id,hits.hits._score"  # what the search request reads of its matches


def _log_scaled(field: str, saturation: int) -> dict[str, Any]:
    return {"$min": [1.0, {"$divide": [{"$log10": {"$add": [1, {"$max": [0, {"$ifNull": [f"${field}", 0]}]}]}},
                                       math.log10(1 + saturation)]}]}


def popularity_expr(now: datetime) -> dict[str, Any]:
    """The popularity score as a MongoDB expression (used by `popular/` and by search)."""
    bayes = {"$divide": [{"$add": [PRIOR_MEAN * PRIOR_WEIGHT, {"$ifNull": ["$rating_sum", 0]}]},
                         {"$add": [PRIOR_WEIGHT, {"$ifNull": ["$rating_count", 0]}]}]}
    fresh_at = {"$max": [{"$ifNull": ["$updated_at", "$created_at"]}, {"$ifNull": ["$last_reviewed", "$created_at"]}]}
    age_days = {"$max": [0, {"$divide": [{"$subtract": [now, fresh_at]}, 86_400_000]}]}
    parts = {
        "views": _log_scaled("view_count", VIEWS_SATURATION),
        "rating": {"$divide": [{"$subtract": [bayes, 1]}, 4]},
        "bookmarks": _log_scaled("bookmark_count", BOOKMARKS_SATURATION),
        "freshness": {"$pow": [0.5, {"$divide": [age_days, FRESHNESS_HALF_LIFE_DAYS]}]},
    }
    return {"$add": [{"$multiply": [POPULARITY_WEIGHTS[k], v]} for k, v in parts.items()]}


async def with_popularity(bk: Backends, flt: dict[str, Any], *, limit: int | None = None,
                          sort: bool = False, only: tuple[str, ...] = ()) -> list[dict]:
    """The articles matching `flt`, each with its `popularity_score` (optionally sorted by it, at most
    `limit`): whole, or only the fields `only` names."""
    # freshness counted from the start of the hour (its half-life is in days): the same scores for every
    # request of the hour, so a search asked again or paged through ranks the same (ties cannot flip as
    # the clock moves)
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    pipeline: list[dict[str, Any]] = [{"$match": flt}, {"$addFields": {"popularity_score": popularity_expr(now)}}]
    if only:
        pipeline.append({"$project": {**{f: 1 for f in only}, "popularity_score": 1}})
    if sort:
        pipeline.append({"$sort": {"popularity_score": -1, "_id": 1}})
    if limit:
        pipeline.append({"$limit": limit})
    cursor = await bk.mongo.articles.aggregate(pipeline)
    return await cursor.to_list(None)


async def popular(bk: Backends, *, user: User, limit: int = 10) -> list[dict]:
    """The most popular published articles this user may see."""
    flt = {"$and": [visibility(user), {"status": ArticleStatus.PUBLISHED.value}]}
    return await with_popularity(bk, flt, limit=limit, sort=True)


# --- search --------------------------------------------------------------------------------

def tfidf(terms: Mapping[str, int], idf: Mapping[str, float]) -> dict[str, float]:
    """A unit-length TF-IDF vector (sub-linear term frequency)."""
    vec = {t: (1 + math.log(tf)) * idf.get(t, 0.0) for t, tf in terms.items() if tf > 0}
    norm = math.sqrt(sum(w * w for w in vec.values()))
    return {t: w / norm for t, w in vec.items()} if norm else {}


def cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    dot = sum(w * b[t] for t, w in a.items() if t in b)
    na = math.sqrt(sum(w * w for w in a.values()))
    nb = math.sqrt(sum(w * w for w in b.values()))
    return max(0.0, min(1.0, dot / (na * nb))) if na and nb else 0.0


def query_profile(query: dict[str, float], top_docs: list[dict[str, float]], beta: float) -> dict[str, float]:
    """Rocchio: the query vector plus `beta` times the centroid of the best matches, so the profile
    describes what the query is about, not only the words it happens to use."""
    profile = dict(query)
    for vec in top_docs:
        for t, w in vec.items():
            profile[t] = profile.get(t, 0.0) + beta * w / len(top_docs)
    return profile


ANALYSED_QUERIES = 2048  # the analyses of recent queries a process keeps (a repeated query, a page 2)
_analysed = Recent(ANALYSED_QUERIES)  # (index, text) -> the query's words and their terms


async def _analyse(bk: Backends, text: str) -> list[tuple[str, list[str]]]:
    """The query's words (whitespace-separated, outer punctuation trimmed) with the analysed terms
    each produced, in query order; stop words produce none. A query analysed lately is not sent again:
    the analyzer is the code's (indexers/base.py), the same for the life of the process."""
    alias = bk.index_alias(articles_index.INDEX.name)
    key = (alias, text)
    if (known := _analysed.use(key)) is not None:
        return known
    words = _analysed[key] = await _analysed_words(bk, alias, text)
    _analysed.trim()
    return words


async def _analysed_words(bk: Backends, alias: str, text: str) -> list[tuple[str, list[str]]]:
    res = await bk.search.indices.analyze(index=alias, body={"analyzer": "ops_text", "text": text})
    words = [(m.start(), m.end(), m.group().strip(".,;:!?()[]{}\"'`").lower()) for m in re.finditer(r"\S+", text)]
    out: dict[int, tuple[str, list[str]]] = {}
    for tok in res.get("tokens", []):
        i = next((i for i, (a, b, _) in enumerate(words) if a <= tok["start_offset"] < b), None)
        if i is not None:
            out.setdefault(i, (words[i][2], []))[1].append(tok["token"])
    return [out[i] for i in sorted(out)]


def topic_affinity(best: list[tuple[str, float]]) -> dict[str, float]:
    """Category -> share of the best matches' relevance that falls in it (sums to 1)."""
    weights: dict[str, float] = {}
    for category, rel in best:
        weights[category] = weights.get(category, 0.0) + rel
    total = sum(weights.values())
    return {c: w / total for c, w in weights.items()} if total else {}


def filters_for(data: SearchInput, user: User) -> list[dict[str, Any]]:
    out = search_visibility(user)
    if data.article_types:
        out.append({"terms": {"article_type": [t.value for t in data.article_types]}})
    if data.categories:
        out.append({"terms": {"category": data.categories}})
    if data.difficulty_levels:
        out.append({"terms": {"difficulty_level": [d.value for d in data.difficulty_levels]}})
    return out


ENGINE_QUERY_CHARS = 500   # a query up to this long goes to the engine as typed
ENGINE_QUERY_TERMS = 64    # a longer one (a pasted description): its first distinct content words


def engine_query(text: str) -> str:
    """What the engine needs of a query: as typed when short; from a pasted description, its first
    ENGINE_QUERY_TERMS distinct content words (stop words, lone digits and repeats cut), in order."""
    if len(text) <= ENGINE_QUERY_CHARS:
        return text
    return " ".join(list(dict.fromkeys(wording.content_words(text)))[:ENGINE_QUERY_TERMS])


async def search(bk: Backends, *, user: User, data: SearchInput, record: bool = True) -> dict[str, Any]:
    """Full-text candidates from OpenSearch, checked against MongoDB (the index may lag it: an
    article just raised above the caller's clearance, unpublished or deleted can still match there),
    then re-ranked by relevance, similarity and popularity. Everything the caller gets — results,
    scores, `total_count`, `has_more` — is computed from the articles MongoDB says they may see, so
    an article they may not see changes nothing in the answer."""
    alias = bk.index_alias(articles_index.INDEX.name)
    query = engine_query(data.query)
    filters = filters_for(data, user)
    window = max(data.offset + data.limit, CANDIDATES)
    # every match's id and score in one request (up to MAX_WINDOW): the candidates are the best of them,
    # and the rest is what the total counts, so no second request lists the matches again
    first = await bk.search.search(index=alias, filter_path=MATCH_FIELDS,
                                   body=articles_index.search_body(query, filters=filters, size=MAX_WINDOW))
    matches = (first.get("hits") or {}).get("hits") or []
    ranked: list[dict[str, Any]] = []
    terms: dict[str, dict[str, int]] = {}
    words: list[tuple[str, list[str]]] = []
    total = 0
    if matches:
        every_match = _complete(first, MAX_WINDOW)
        jobs = [_visible_candidates(bk, user, window, matches), _analyse(bk, query)]
        if len(matches) > window:  # more matches than candidates: count them all, meanwhile
            jobs.append(_visible_count(bk, user, [h["_id"] for h in matches]) if every_match
                        else _visible_total(bk, alias, query, filters, user, [h["_id"] for h in matches]))
        jobs.append(article_embeddings.QUERY.embed_text(query)
                    if bk.settings.ranking_similarity_semantic_share > 0 else asyncio.sleep(0))
        (hits, docs), words, *counted, query_vec = await asyncio.gather(*jobs)
        hits = hits[:window]
        terms = await _terms(bk, alias, [h["_id"] for h in hits]) if lexical_weighs(
            [docs[h["_id"]] for h in hits if h["_id"] in docs], bk.settings, query_vec) else {}
        ranked = rerank(hits, words, docs, bk.settings, query_vec, terms)
        total = counted[0] if counted else len(hits)
    page = await _page(bk, user, alias, ranked, words, data.offset, data.limit, terms) if ranked else []
    search_id = None  # a search the service makes for itself (recommendations) is not a person's search
    if record:
        search_id = await record_usage(bk, kind="article.search", user=user, query=query, result_count=total,
                                       filters=_filters_echo(data))
        await record_audit(bk, action=SEARCH, user=user, subject_type="knowledge_base", subject_id=search_id,
                           changes={"query": data.query, "filters": _filters_echo(data), "result_count": total})
    return {"results": page, "total_count": total, "query": data.query, "filters": _filters_echo(data),
            "pagination": {"limit": data.limit, "offset": data.offset, "has_more": data.offset + len(page) < total},
            "search_id": search_id}


def _complete(res: dict[str, Any], size: int) -> bool:
    """Whether a search response holds every match."""
    hits = res["hits"]["hits"]
    return len(hits) < size or len(hits) >= res["hits"]["total"]["value"]


async def _visible_candidates(bk: Backends, user: User, window: int,
                              matches: list[dict[str, Any]]) -> tuple[list[dict], dict[str, dict]]:
    """The best `matches` (hits, best first) the caller may see — `window` of them when there are that
    many — and the MongoDB documents behind them, with `popularity_score`. Hits MongoDB hides from the
    caller (the index lags it) are dropped and the window widened past them, so the candidates are those
    the caller would get were the hidden articles not indexed."""
    visible: list[dict] = []
    docs: dict[str, dict] = {}
    start, size = 0, window
    for _ in range(MAX_WIDENINGS):
        part = matches[start:start + size]
        if not part:
            break
        found = await with_popularity(bk, {"$and": [{"_id": {"$in": [h["_id"] for h in part]}}, visibility(user)]},
                                      only=CANDIDATE_FIELDS)
        docs.update((d["_id"], d) for d in found)
        seen = [h for h in part if h["_id"] in docs]
        visible += seen
        start += len(part)
        if len(visible) >= window:
            break
        size = max(window - len(visible), 2 * (len(part) - len(seen)))
    return visible, docs


async def _visible_count(bk: Backends, user: User, ids: list[str]) -> int:
    """How many of these articles the caller may see, by MongoDB."""
    total = 0
    for i in range(0, len(ids), MAX_WINDOW):
        total += await bk.mongo.articles.count_documents({"$and": [{"_id": {"$in": ids[i:i + MAX_WINDOW]}},
                                                                   visibility(user)]})
    return total


async def _visible_total(bk: Backends, alias: str, query: str, filters: list[dict[str, Any]], user: User,
                         known: list[str]) -> int:
    """How many of the articles the index matches the caller may see, by MongoDB: the ids of every
    match (in one unordered request when they fit in one, else in pages of 10,000 in slug order),
    counted under the visibility rule."""
    ids = set(known)
    after, ordered = None, False
    while True:
        res = await bk.search.search(index=alias, filter_path="hits.hits._id,hits.hits.sort",
                                     body=articles_index.match_ids_body(query, filters=filters, size=MAX_WINDOW,
                                                                        after=after, ordered=ordered))
        page = (res.get("hits") or {}).get("hits") or []
        ids.update(h["_id"] for h in page)
        if len(page) < MAX_WINDOW:
            break
        after = page[-1]["sort"] if ordered else None
        ordered = True
    return await _visible_count(bk, user, sorted(ids))


def lexical_share(s: Settings, with_meaning: bool) -> float:
    """The term cosine's share of the similarity: 1 - g - h beside a meaning (the query's and the article's
    vectors), 1 - g without one."""
    g, h = s.ranking_similarity_topic_share, s.ranking_similarity_semantic_share
    return 1 - g - h if with_meaning else 1 - g


def lexical_weighs(docs: list[Mapping[str, Any]], s: Settings, query_vec: np.ndarray | None) -> bool:
    """Whether the term cosine weighs on any of these candidates. With the default shares meaning replaces
    it wherever both vectors exist, and the candidates' stored terms are not read at all."""
    return any(lexical_share(s, query_vec is not None and article_embeddings.PROFILE.has_vector(d)) > 0
               for d in docs)


async def _terms(bk: Backends, alias: str, ids: list[str]) -> dict[str, dict[str, int]]:
    """The stored terms of these articles (an article no longer indexed has none)."""
    if not ids:
        return {}
    res = await bk.search.search(index=alias, body=articles_index.terms_body(ids))
    return {h["_id"]: articles_index.stored_terms(h) for h in res["hits"]["hits"]}


def rerank(hits: list[dict], query_words: list[tuple[str, list[str]]], docs: Mapping[str, dict],
           s: Settings, query_vec: np.ndarray | None = None,
           terms: Mapping[str, Mapping[str, int]] | None = None) -> list[dict[str, Any]]:
    """The candidates (OpenSearch hits, best first) in their final order, each with its scores. `docs`
    are the MongoDB documents with `popularity_score`; a hit without one (deleted or hidden since
    indexing) is dropped before any score is computed, so it weighs on none (not the best score, the IDF,
    the feedback or the topic). `terms`: the hits' stored terms (else those the hits carry), needed only
    where the term cosine weighs (`lexical_weighs`)."""
    hits = [h for h in hits if h["_id"] in docs]
    if not hits:
        return []
    ids = [h["_id"] for h in hits]
    best = max(h["_score"] or 0.0 for h in hits) or 1.0
    relevance = {h["_id"]: (h["_score"] or 0.0) / best for h in hits}
    terms_of = {h["_id"]: (terms.get(h["_id"], {}) if terms is not None else articles_index.stored_terms(h))
                for h in hits}
    topic = topic_affinity([(docs[i].get("category", ""), relevance[i]) for i in ids[:TOPIC_DOCS]])
    g, h = s.ranking_similarity_topic_share, s.ranking_similarity_semantic_share
    meanings: dict[str, float | None] = dict.fromkeys(ids)
    embedded = [i for i in ids if article_embeddings.PROFILE.has_vector(docs[i])] if query_vec is not None else []
    if embedded:  # one matrix product, not a vector decoded per candidate
        cosines = matrix_from_bytes([docs[i]["embedding"] for i in embedded]) @ query_vec
        meanings.update(zip(embedded, np.maximum(cosines, 0.0).tolist()))
    # the term cosine, computed only where it weighs (with the default shares, meaning replaces it: no
    # TF-IDF vectors at all when every candidate has one)
    lexical_of: dict[str, float] = {}
    if any(lexical_share(s, m is not None) > 0 for m in meanings.values()):
        q_counts = Counter(t for _, terms in query_words for t in terms)
        df = Counter(t for v in terms_of.values() for t in v)
        idf = {t: math.log(1 + len(hits) / (1 + df[t])) for t in set(df) | set(q_counts)}
        doc_vecs = {i: tfidf(terms_of[i], idf) for i in ids}
        profile = query_profile(tfidf(q_counts, idf), [doc_vecs[i] for i in ids[:PRF_DOCS]], PRF_BETA)
        lexical_of = {i: cosine(profile, doc_vecs[i]) for i in ids}
    ranked = []
    for doc_id in ids:
        doc = docs[doc_id]
        meaning, lexical = meanings[doc_id], lexical_of.get(doc_id, 0.0)
        similarity = g * topic.get(doc.get("category", ""), 0.0) + (
            lexical_share(s, meaning is not None) * lexical + (h * meaning if meaning is not None else 0.0))
        popularity = doc["popularity_score"]
        score = (s.ranking_weight_relevance * relevance[doc_id] + s.ranking_weight_similarity * similarity
                 + s.ranking_weight_popularity * popularity)
        ranked.append({"doc": doc, "score": score, "relevance_score": round(relevance[doc_id], 4),
                       "similarity_score": round(similarity, 4), "popularity_score": round(popularity, 4)})
    ranked.sort(key=lambda r: (-r["score"], -r["relevance_score"], str(r["doc"]["_id"])))  # ties: by id
    return ranked


def matching_keywords(query_words: list[tuple[str, list[str]]], terms: Mapping[str, int]) -> list[str]:
    """The query's words an article contains: a word matches when all its analysed terms occur."""
    matched: list[str] = []
    for word, word_terms in query_words:
        if word_terms and all(t in terms for t in word_terms) and word not in matched:
            matched.append(word)
    return matched


async def _page(bk: Backends, user: User, alias: str, ranked: list[dict[str, Any]],
                words: list[tuple[str, list[str]]], start: int, limit: int,
                known_terms: Mapping[str, Mapping[str, int]]) -> list[dict[str, Any]]:
    """The page of the ranked candidates, each with its whole document (the candidates were read without
    their content) and its matching keywords (from its stored terms: those not among `known_terms`, read
    for the ranking, are read now): that work for the page only, not the whole window. An article hidden or
    deleted since the candidates were read is left out."""
    page = ranked[start:start + limit]
    if not page:
        return []
    ids = [r["doc"]["_id"] for r in page]
    found, read = await asyncio.gather(
        bk.mongo.articles.find({"$and": [{"_id": {"$in": ids}}, visibility(user)]}, {"embedding": 0}).to_list(None),
        _terms(bk, alias, [i for i in ids if i not in known_terms]))
    terms = {**known_terms, **read}
    full = {d["_id"]: d for d in found}
    return [{**r, "doc": {**full[r["doc"]["_id"]], "popularity_score": r["doc"]["popularity_score"]},
             "matching_keywords": matching_keywords(words, terms.get(r["doc"]["_id"], {}))}
            for r in page if r["doc"]["_id"] in full]


def _filters_echo(data: SearchInput) -> dict[str, list[str]]:
    return {"article_types": [t.value for t in data.article_types], "categories": list(data.categories),
            "difficulty_levels": [d.value for d in data.difficulty_levels]}

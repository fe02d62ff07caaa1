"""The knowledge-base articles index and its search query."""

from __future__ import annotations

from typing import Any

from indexers.analysis import KEYWORD, text_field
from indexers.base import IndexDefinition


def keyword_text() -> dict[str, Any]:
    """A keyword (filters, exact values) that is also searchable as text and as an identifier."""
    return {"type": "keyword", "fields": {"text": {"type": "text", "analyzer": "ops_text"},
                                          "exact": {"type": "text", "analyzer": "ops_exact"}}}


MAPPINGS = {
    "dynamic": "strict",
    "properties": {
        "slug": KEYWORD,
        "title": text_field(),
        "summary": text_field(),
        "content": text_field(),
        "tags": keyword_text(),
        "search_keywords": keyword_text(),
        "category": keyword_text(),
        "subcategory": keyword_text(),
        "related_services": keyword_text(),
        "related_components": keyword_text(),
        "article_type": KEYWORD,
        "difficulty_level": KEYWORD,
        "status": KEYWORD,
        "data_classification": KEYWORD,
        "author": KEYWORD,
        "is_featured": {"type": "boolean"},
        # Everything a reader sees, analysed as a whole ...
        "all_text": {"type": "text", "analyzer": "ops_text"},
        # ... and its analysed terms with their frequencies, stored (not indexed) for the similarity
        # score, so a search needs no term-vector round trip.
        "terms": {"type": "object", "enabled": False},
        "created_at": {"type": "date"},
        "updated_at": {"type": "date"},
    },
}

# Field weights: title above tags and keywords above summary above content. The `.exact`
# sub-fields make identifiers (OOMKilled, payment-service, ECONNREFUSED) match whole.
SEARCH_FIELDS = [
    "title^5", "title.exact^5",
    "tags.text^3", "tags.exact^3", "search_keywords.text^3", "search_keywords.exact^3",
    "summary^2", "summary.exact^2",
    "related_services.text^1.5", "related_components.text^1.5", "category.text^1.5", "subcategory.text",
    "content", "content.exact",
]

_COPY = ("slug", "title", "summary", "content", "tags", "search_keywords", "category", "subcategory",
         "related_services", "related_components", "article_type", "difficulty_level", "status",
         "data_classification", "author", "is_featured")


def build(doc: dict) -> dict:
    out = {k: doc.get(k) for k in _COPY if doc.get(k) not in (None, "", [])}
    out["all_text"] = "\n".join(x for x in [doc.get("title"), doc.get("summary"), " ".join(doc.get("tags") or []),
                                              " ".join(doc.get("search_keywords") or []), doc.get("content")] if x)
    for k in ("created_at", "updated_at"):
        if doc.get(k):
            out[k] = doc[k].isoformat()
    return out


async def analysed_terms(bk, index: str, text: str) -> dict[str, int]:
    """Term frequencies of `text` under the ops_text analyzer of `index`."""
    if not text:
        return {}
    res = await bk.search.indices.analyze(index=index, body={"analyzer": "ops_text", "text": text})
    out: dict[str, int] = {}
    for tok in res.get("tokens", []):
        out[tok["token"]] = out.get(tok["token"], 0) + 1
    return out


async def enrich(bk, index: str, source: dict) -> dict:
    # [term, frequency] pairs, not an object: terms such as "10.0.0.1" would read as paths
    return {"terms": sorted(map(list, (await analysed_terms(bk, index, source.get("all_text", ""))).items()))}


def stored_terms(hit: dict) -> dict[str, int]:
    """The analysed terms stored with a hit (see `enrich`)."""
    return {t: n for t, n in (hit.get("_source") or {}).get("terms") or []}


INDEX = IndexDefinition(name="articles", collection="articles", mappings=MAPPINGS, build=build, enrich=enrich)


def _text_match(query: str) -> dict[str, Any]:
    return {"multi_match": {"query": query, "fields": SEARCH_FIELDS, "type": "best_fields", "tie_breaker": 0.3}}


def search_body(query: str, *, filters: list[dict[str, Any]], size: int) -> dict[str, Any]:
    """Weighted full-text relevance over the article fields, with phrase matches boosted."""
    return {
        "size": size,
        "track_total_hits": True,
        "_source": False,  # the stored terms are read only where they are used (`terms_body`)
        "query": {"bool": {
            "must": [_text_match(query)],
            "should": [
                {"match_phrase": {"title": {"query": query, "slop": 2, "boost": 3}}},
                {"match_phrase": {"summary": {"query": query, "slop": 3, "boost": 1.5}}},
                {"match_phrase": {"content": {"query": query, "slop": 3}}},
            ],
            "filter": filters,
        }},
    }


def terms_body(ids: list[str]) -> dict[str, Any]:
    """The stored terms (see `enrich`) of these articles."""
    return {"size": len(ids), "_source": ["terms"], "query": {"ids": {"values": list(ids)}}}


def match_ids_body(query: str, *, filters: list[dict[str, Any]], size: int,
                   after: list[Any] | None = None, ordered: bool = True) -> dict[str, Any]:
    """The ids of every article `search_body` matches (no scoring), `size` at a time; `ordered`
    pages go in slug order (`search_after` the last page's `sort`), so a total can be checked
    against MongoDB however many there are."""
    body: dict[str, Any] = {
        "size": size,
        "track_total_hits": False,
        "_source": False,
        "query": {"bool": {"filter": [_text_match(query), *filters]}},
    }
    if ordered:
        body["sort"] = [{"slug": "asc"}]
    if after is not None:
        body["search_after"] = after
    return body

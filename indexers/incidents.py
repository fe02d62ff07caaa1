"""The incidents index and the similar-incident query that recommendations build on."""

from __future__ import annotations

from typing import Any

from app.backends import Backends
from indexers.analysis import KEYWORD, text_field
from indexers.base import IndexDefinition, VectorField

MLT_FIELDS = ["title", "description", "root_cause", "resolution"]
MLT_QUERY_TERMS = 25  # more_like_this max_query_terms, was 40: the same quality measured (docs/benchmarks.md)
# Once a root cause or resolution is written, a weighted match makes what the incident *is* (title, root
# cause, what fixed it) outweigh narrative and first symptoms.
CAUSE_FIELDS = ["title^3", "root_cause^2.5", "resolution^1.5", "description", "affected_services.text^2",
                "tags.text^1.5", "category.text"]

MAPPINGS = {
    "dynamic": "strict",
    "properties": {
        "name": KEYWORD,
        "namespace": KEYWORD,
        "title": text_field(),
        "description": text_field(),
        "root_cause": text_field(),
        "resolution": text_field(),
        "category": {"type": "keyword", "fields": {"text": {"type": "text", "analyzer": "ops_text"}}},
        "severity": KEYWORD,
        "status": KEYWORD,
        "data_classification": KEYWORD,
        "affected_services": {"type": "keyword", "fields": {"text": {"type": "text", "analyzer": "ops_exact"}}},
        "affected_teams": KEYWORD,
        "tags": {"type": "keyword", "fields": {"text": {"type": "text", "analyzer": "ops_text"}}},
        "detected_at": {"type": "date"},
        "resolved_at": {"type": "date"},
        "created_at": {"type": "date"},
        "updated_at": {"type": "date"},
    },
}

_FIELDS = [k for k in MAPPINGS["properties"]]


def build(doc: dict) -> dict:
    out = {k: doc.get(k) for k in _FIELDS if doc.get(k) not in (None, "", [])}
    for k in ("detected_at", "resolved_at", "created_at", "updated_at"):
        if k in out:
            out[k] = out[k].isoformat()
    return out


# The incident's embedding (app/incidents/embeddings.py) rides along where the server serves k-NN.
INDEX = IndexDefinition(name="incidents", collection="incidents", mappings=MAPPINGS, build=build,
                        vector=VectorField())


def incident_text(doc: dict) -> str:
    """The text that describes an incident, for more_like_this."""
    parts = [doc.get("title"), doc.get("description"), doc.get("root_cause"), doc.get("resolution"),
             " ".join(doc.get("affected_services") or []), " ".join(doc.get("tags") or [])]
    return "\n".join(p for p in parts if p)


def similar_query(doc: dict, *, limit: int, visible: dict[str, Any] | None = None,
                  ids: list[str] | None = None) -> dict[str, Any]:
    """more_like_this over the incident's text, plus its services and category, excluding itself; once
    its root cause or resolution is written, also a weighted multi_match in which they weigh more.

    Before a cause is known (a new incident: title, description, first events) the multi_match is left
    out: bench/similarity_quality.py on 176 such early queries measured the hybrid ranking better without
    it (same-cause nDCG@10 0.468 → 0.487, MRR 0.661 → 0.720, the same company's share of the top 5 0.26 →
    0.19: the long best_fields match mostly rewarded a shared vendor's wording) and the query cheaper (at
    10k incidents on osmem p50 298 → 113 ms). With the cause written it helps (same-cause nDCG@10 0.606
    with it, 0.561 without).

    `ids`: only these incidents are scored (an `ids` filter; app/incidents/similarity.py sends the
    nearest by meaning and those not in the vector index yet). A Lucene engine then leads with the filter
    and scores only them, so its work no longer grows with the corpus; the term statistics (idf) are
    still the whole index's, so a candidate's score is the one it gets in the unfiltered query. osmem,
    the test server, evaluates each clause over the whole index before filtering: no faster there."""
    text = incident_text(doc)
    should: list[dict[str, Any]] = [
        {"more_like_this": {"fields": MLT_FIELDS, "like": text, "min_term_freq": 1, "min_doc_freq": 1,
                            "max_query_terms": MLT_QUERY_TERMS, "minimum_should_match": "20%", "boost": 1.0}},
    ]
    if (doc.get("root_cause") or "").strip() or (doc.get("resolution") or "").strip():
        should.append({"multi_match": {"query": text[:2000], "fields": CAUSE_FIELDS, "type": "best_fields",
                                       "tie_breaker": 0.3, "boost": 1.0}})
    for svc in doc.get("affected_services") or []:
        should.append({"term": {"affected_services": {"value": svc, "boost": 0.5}}})
    if doc.get("category"):
        should.append({"term": {"category": {"value": doc["category"], "boost": 0.5}}})
    flt: list[dict[str, Any]] = [visible] if visible else []
    if ids is not None:
        flt.append({"ids": {"values": list(ids)}})
    return {
        "size": limit,
        "query": {"bool": {"should": should, "minimum_should_match": 1, "filter": flt,
                           "must_not": [{"ids": {"values": [str(doc["_id"])]}}]}},
        "_source": ["name", "title"],
    }


async def similar_incidents(bk: Backends, doc: dict, *, limit: int = 5, visible: dict[str, Any] | None = None,
                            ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Scored hits `{"id", "score", "normalized_score"}` for incidents similar to `doc`, best first,
    among those matching the `visible` filter (and among `ids` when given).

    `normalized_score` divides by the best hit's score, so the top hit is 1.0."""
    res = await bk.search.search(index=bk.index_alias(INDEX.name),
                                 body=similar_query(doc, limit=limit, visible=visible, ids=ids))
    hits = res["hits"]["hits"]
    top = max((h["_score"] or 0.0 for h in hits), default=0.0) or 1.0
    return [{"id": h["_id"], "score": h["_score"], "normalized_score": round((h["_score"] or 0.0) / top, 4)}
            for h in hits]


async def searchable_now(bk: Backends, docs: list[dict]) -> set[str]:
    """The ids of `docs` that a search sees now as they are (their `updated_at` is the one the engine
    holds, refreshed): the engine's score for them, nothing included, is their real one."""
    if not docs:
        return set()
    res = await bk.search.search(index=bk.index_alias(INDEX.name), body={
        "size": len(docs), "query": {"ids": {"values": [str(d["_id"]) for d in docs]}}, "_source": ["updated_at"]})
    held = {h["_id"]: (h.get("_source") or {}).get("updated_at") for h in res["hits"]["hits"]}
    as_indexed = {str(d["_id"]): build({"updated_at": d.get("updated_at")}).get("updated_at") for d in docs}
    return {i for i, at in as_indexed.items() if i in held and held[i] == at}

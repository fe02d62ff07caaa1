"""A search index that must be rebuilt from MongoDB (missing: a new or emptied search cluster) is rebuilt
through one leased job: by the process that finds it when the collection is small, else by the workers,
once, however many processes ask — a start over a large collection does not wait for it, and two API
processes starting together do not each rebuild it. Its own database and index prefix, so that the test
session's worker (another database) never takes these jobs."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest

from app.backends import connect
from app.db import INDEXES
from app.indexing import outbox
from indexers import incidents as incidents_index
from indexers.base import alias_targets, needs_rebuild

INDEX = incidents_index.INDEX


@pytest.fixture
async def apart(bk):
    tag = uuid.uuid4().hex[:8]
    settings = bk.settings.model_copy(update={"mongodb_db": f"ikl_rebuild_{tag}", "index_prefix": f"rebuild{tag}",
                                              "search_inline_rebuild_max": 10})
    other = connect(settings, jobs=True)
    # the outbox's indexes, as every start makes them (app/db.py): its unique (index, doc_id) is what makes two
    # processes' records of one job one entry
    await other.mongo.outbox.create_indexes(INDEXES["outbox"])
    await other.mongo.incidents.insert_many([{"_id": f"r{i}", "name": f"INC-20260101-{i:03d}", "title": f"Disk full {i}",
                                              "status": "RESOLVED", "data_classification": "INTERNAL"}
                                             for i in range(25)])
    yield other
    await other.search.indices.delete(index=f"rebuild{tag}-*", ignore_unavailable=True)
    await other.mongo.client.drop_database(settings.mongodb_db)
    await other.close()


async def test_a_large_collection_is_rebuilt_by_one_worker_not_by_the_start(apart, monkeypatch):
    assert await needs_rebuild(apart, INDEX) == "missing"
    # two processes find it missing at once (25 documents, more than the inline maximum of 10): neither
    # rebuilds it, both leave it to the workers, and one job stands for both
    assert await asyncio.gather(outbox.rebuild(apart, INDEX), outbox.rebuild(apart, INDEX)) == ["queued", "queued"]
    assert await apart.mongo.outbox.count_documents({"index": outbox.REBUILD, "doc_id": INDEX.name}) == 1
    assert await needs_rebuild(apart, INDEX) == "missing"

    builds = []
    real = outbox.ensure_index

    async def counted(bk_, definition):
        builds.append(definition.name)
        return await real(bk_, definition)

    monkeypatch.setattr(outbox, "ensure_index", counted)
    # two workers' sweeps at once: the job's lease lets one of them run it
    done = await asyncio.gather(*(outbox.drain(apart, jobs=True) for _ in range(2)))
    assert sorted(d["synced"] for d in done) == [0, 1] and builds == [INDEX.name]
    assert await needs_rebuild(apart, INDEX) is None and await alias_targets(apart, INDEX)
    await apart.search.indices.refresh(index=apart.index_alias(INDEX.name))
    assert (await apart.search.count(index=apart.index_alias(INDEX.name)))["count"] == 25
    assert await apart.mongo.outbox.count_documents({"index": outbox.REBUILD}) == 0
    assert await outbox.rebuild(apart, INDEX) == "current"


async def test_a_small_collection_is_rebuilt_at_once_by_the_process_that_finds_it(apart):
    small = dataclasses.replace(apart, settings=apart.settings.model_copy(update={"search_inline_rebuild_max": 1000}))
    assert await outbox.rebuild(small, INDEX) == "rebuilt"  # here, now
    assert await needs_rebuild(small, INDEX) is None
    assert await small.mongo.outbox.count_documents({"index": outbox.REBUILD}) == 0

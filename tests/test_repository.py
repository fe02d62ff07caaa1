"""The one way to read a collection (app/repository.py), on a collection of its own: a document hidden from the
reader is answered exactly like a missing one; pages and by-ids hold only what the reader may see; a list
declared unclassified needs no reader; a domain's stricter rule and a caller's filter on the same field both
hold."""

from __future__ import annotations

import uuid

import pytest

from app.errors import NotFound
from app.listing import ListSpec
from app.repository import Repository


@pytest.fixture
async def things(bk):
    name = f"repo_{uuid.uuid4().hex[:8]}"
    await bk.mongo[name].insert_many([
        {"_id": "p", "slug": "public-one", "data_classification": "PUBLIC", "status": "DRAFT"},
        {"_id": "i", "slug": "internal-one", "data_classification": "INTERNAL", "status": "PUBLISHED"},
        {"_id": "r", "slug": "restricted-one", "data_classification": "RESTRICTED", "status": "PUBLISHED"}])
    try:
        yield name
    finally:
        await bk.mongo.drop_collection(name)


async def test_hidden_is_answered_like_missing(bk, tokens, things):
    repo = Repository("Thing", "THING_NOT_FOUND", collection=things)
    viewer, admin = tokens["viewer_user"], tokens["admin_user"]
    assert (await repo.get(bk, "r", admin))["slug"] == "restricted-one"
    with pytest.raises(NotFound) as hidden:
        await repo.get(bk, "r", viewer)
    with pytest.raises(NotFound) as missing:
        await repo.get(bk, "nope", viewer)
    assert (hidden.value.code, str(hidden.value).replace("'r'", "'x'")) == \
        (missing.value.code, str(missing.value).replace("'nope'", "'x'")) == ("THING_NOT_FOUND", "Thing 'x' not found")
    assert sorted(await repo.by_ids(bk, ["p", "i", "r", "nope"], viewer)) == ["i", "p"]
    assert sorted(await repo.by_ids(bk, ["p", "i", "r"], admin)) == ["i", "p", "r"]


async def test_pages_hold_only_what_the_reader_may_see(bk, tokens, things):
    spec = ListSpec(ordering={"slug": "slug"}, default_ordering=("slug",))  # no collection: no indexes made
    repo = Repository("Thing", "THING_NOT_FOUND", spec, collection=things)
    page = await repo.page(bk, {}, tokens["viewer_user"])
    assert (page.count, [d["slug"] for d in page.items]) == (2, ["internal-one", "public-one"])
    page = await repo.page(bk, {}, tokens["viewer_user"], base_filter={"status": "PUBLISHED"})
    assert [d["_id"] for d in page.items] == ["i"]


async def test_an_unclassified_list_needs_no_reader_and_a_stricter_rule_holds_with_the_callers_filter(bk, tokens,
                                                                                                      things):
    open_spec = ListSpec(classified=False, ordering={"slug": "slug"}, default_ordering=("slug",))
    assert (await Repository("Thing", "THING_NOT_FOUND", open_spec, collection=things).page(bk, {}, None)).count == 3

    published_only = Repository("Thing", "THING_NOT_FOUND", collection=things, key="slug",
                                rule=lambda user: {"status": "PUBLISHED", "data_classification": {"$ne": "RESTRICTED"}})
    assert (await published_only.get(bk, "internal-one", tokens["viewer_user"]))["_id"] == "i"
    with pytest.raises(NotFound):
        await published_only.get(bk, "public-one", tokens["viewer_user"])  # a draft
    # the caller's filter names a field the rule names too: both hold (an $and, not one overwriting the other)
    assert published_only.visible(None, {"status": "DRAFT"}) == {
        "$and": [{"status": "PUBLISHED", "data_classification": {"$ne": "RESTRICTED"}}, {"status": "DRAFT"}]}
    assert await published_only.find(bk, "public-one", None, where={"status": "DRAFT"}) is None


async def test_a_page_past_the_servers_reply_limit_is_read_whole(bk, tokens, monkeypatch):
    """A page is read by the `find` command (app/listing.py): a first batch the server cuts at its 16 MiB reply
    limit is read on from where it stopped, its cursor closed, so the page holds every document, in order."""
    from pymongo.asynchronous.database import AsyncDatabase

    name = f"repo_{uuid.uuid4().hex[:8]}"
    big = "x" * (6 * 1024 * 1024)  # three of these pass 16 MiB: the first batch holds two
    await bk.mongo[name].insert_many([{"_id": f"d{i}", "n": i, "data_classification": "INTERNAL", "body": big}
                                      for i in range(3)])
    commands: list[str] = []
    real = AsyncDatabase.command

    async def seen(self, command, *args, **kwargs):
        commands.append(next(iter(command)))
        return await real(self, command, *args, **kwargs)

    monkeypatch.setattr(AsyncDatabase, "command", seen)
    repo = Repository("Thing", "THING_NOT_FOUND", ListSpec(ordering={"n": "n"}), collection=name)
    try:
        page = await repo.page(bk, {"ordering": "-n", "page_size": "3"}, tokens["viewer_user"])
        assert [d["_id"] for d in page.items] == ["d2", "d1", "d0"] and page.count == 3
        assert all(len(d["body"]) == len(big) for d in page.items)
        assert commands == ["find", "killCursors", "find"], commands
        idle = await bk.mongo.client.admin.aggregate([{"$currentOp": {"idleCursors": True}}, {"$match": {
            "type": "idleCursor", "ns": f"{bk.mongo.name}.{name}"}}])
        assert await idle.to_list(None) == []  # no cursor left open
    finally:
        await bk.mongo.drop_collection(name)


async def test_a_page_read_is_retried_once_after_a_lost_connection_not_after_its_deadline(bk, tokens, things,
                                                                                           monkeypatch):
    """As the driver's retryable reads: a connection lost (or a primary stepping down) mid-read is tried once
    more; a read that ran out of its deadline is not (its caller answers DATABASE_UNAVAILABLE at once)."""
    from pymongo.asynchronous.database import AsyncDatabase
    from pymongo.errors import AutoReconnect, NetworkTimeout

    real = AsyncDatabase.command
    failures: list[Exception] = []

    async def flaky(self, command, *args, **kwargs):
        if next(iter(command)) == "find" and failures:
            raise failures.pop(0)
        return await real(self, command, *args, **kwargs)

    monkeypatch.setattr(AsyncDatabase, "command", flaky)
    repo = Repository("Thing", "THING_NOT_FOUND", ListSpec(ordering={"slug": "slug"}, default_ordering=("slug",)),
                      collection=things)
    admin = tokens["admin_user"]
    failures[:] = [AutoReconnect("connection reset")]
    assert len((await repo.page(bk, {}, admin)).items) == 3 and not failures
    failures[:] = [AutoReconnect("connection reset"), AutoReconnect("connection reset again")]
    with pytest.raises(AutoReconnect):
        await repo.page(bk, {}, admin)
    failures[:] = [NetworkTimeout("timed out"), AutoReconnect("never reached")]
    with pytest.raises(NetworkTimeout):
        await repo.page(bk, {}, admin)
    assert len(failures) == 1
    # a document by its key (the `find` command too, app/listing.py find_one): the same rule
    failures[:] = [AutoReconnect("connection reset")]
    assert (await repo.get(bk, "i", admin))["slug"] == "internal-one" and not failures
    failures[:] = [AutoReconnect("connection reset"), AutoReconnect("connection reset again")]
    with pytest.raises(AutoReconnect):
        await repo.get(bk, "i", admin)
    failures[:] = [NetworkTimeout("timed out"), AutoReconnect("never reached")]
    with pytest.raises(NetworkTimeout):
        await repo.get(bk, "i", admin)


async def test_a_document_is_read_as_find_one_reads_it_and_leaves_no_cursor(bk, tokens, things):
    repo = Repository("Thing", "THING_NOT_FOUND", collection=things, key="slug")
    admin = tokens["admin_user"]
    for slug in ("public-one", "restricted-one"):
        flt = repo.visible(admin, {"slug": slug})
        assert await repo.find(bk, slug, admin) == await bk.mongo[things].find_one(flt)
        assert await repo.find(bk, slug, admin, projection={"status": 1}) == \
            await bk.mongo[things].find_one(flt, {"status": 1})
    assert await repo.find(bk, "nope", admin) is None
    # several documents match: the first, as find_one answers, and no cursor is left open for the others
    assert (await repo.find(bk, "PUBLISHED", admin, by="status"))["_id"] == \
        (await bk.mongo[things].find_one({"status": "PUBLISHED"}))["_id"]
    idle = await bk.mongo.client.admin.aggregate([{"$currentOp": {"idleCursors": True}}, {"$match": {
        "type": "idleCursor", "ns": f"{bk.mongo.name}.{things}"}}])
    assert await idle.to_list(None) == []
    # the service's database makes each collection once (app/backends.py Database)
    assert bk.mongo[things] is bk.mongo[things] and bk.mongo.incidents is bk.mongo["incidents"]

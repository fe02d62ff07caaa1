"""Demo data: built the same way every time, covering every documented filter value, with clean
titles and guides quoted from the dataset; seeded once through the services, after which the
documented knowledge-base search example finds runbooks and troubleshooting guides."""

from __future__ import annotations

import contextlib
import uuid

import httpx
import pytest

from app import demo
from app.articles.models import ArticleStatus, ArticleType, Difficulty
from app.demo.facts import read_all
from app.demo.seed import LINK
from app.demo.text import clip, plain
from app.incidents.models import EventType, Severity, Status
from app.users.models import Classification, Role

BASE = "/api/knowledge/knowledge-articles/"
DATASET_ROWS = demo.load_rows() if demo.DATASET.exists() else None
needs_dataset = pytest.mark.skipif(DATASET_ROWS is None, reason="the public incident dataset is not here")
ROW_SETS = [pytest.param(demo.BUILT_IN, id="built-in"),
            pytest.param(DATASET_ROWS, id="dataset", marks=needs_dataset)]


def values(enum) -> set[str]:
    return {e.value for e in enum}


# --- the data, as built ---------------------------------------------------------------------

@pytest.mark.parametrize("rows", ROW_SETS)
def test_every_documented_value_is_there(rows):
    data = demo.build(rows)
    arts = [a.fields for a in data.articles]
    assert {a["article_type"] for a in arts} == values(ArticleType)
    assert {a["status"] for a in arts} == values(ArticleStatus)
    assert {a["difficulty_level"] for a in arts} == values(Difficulty)
    assert {a["data_classification"] for a in arts} == values(Classification)
    assert any(a.get("is_featured") for a in arts)
    assert {a["article_type"] for a in arts if a.get("is_featured")} >= {"RUNBOOK", "HOW_TO"}
    published = [a for a in data.articles if a.fields["status"] == "PUBLISHED"]
    assert any(a.views for a in published) and any(a.ratings for a in published) and any(a.bookmarks for a in published)
    assert {i.severity.value for i in data.incidents} == values(Severity)
    assert {i.status.value for i in data.incidents} == values(Status)
    assert len({i.namespace for i in data.incidents if i.status.value in ("OPEN", "INVESTIGATING", "MITIGATED")}) >= 2
    assert len({i.namespace for i in data.incidents}) >= 4
    assert {e.type.value for i in data.incidents for e in i.timeline} == values(EventType)
    assert {u.role for u in data.users} == {Role.EDITOR, Role.VIEWER}
    assert {u.clearance for u in [demo.IMPORTER, *data.users]} == set(Classification)


@pytest.mark.parametrize("rows", ROW_SETS)
def test_building_twice_gives_the_same_data(rows):
    first, second = demo.build(rows), demo.build([dict(r) for r in rows])
    assert first.dump() == second.dump()
    assert len({a.key for a in first.articles}) == len(first.articles)
    assert len({i.name for i in first.incidents}) == len(first.incidents)


@pytest.mark.parametrize("rows", ROW_SETS)
def test_titles_are_clean(rows):
    data = demo.build(rows)
    for t in [i.title for i in data.incidents] + [a.title for a in data.articles]:
        assert 0 < len(t) <= 200, t
        assert "[" not in t and "]" not in t and "http" not in t and "`" not in t and "**" not in t, t
        assert t.count("(") == t.count(")") and t.count('"') % 2 == 0, t
        assert not t.endswith((".", ",", ";", ":", "-", "(")), t
    # an incident's title is its company and the start of its root cause, cut between words
    causes: dict[str, list[str]] = {}
    for f in read_all(rows):
        causes.setdefault(f.company, []).append(f.root_cause)
    for inc in data.incidents:
        company, text = inc.title.split(": ", 1)
        cause = next(c for c in causes[company] if c.startswith(text))
        assert len(cause) == len(text) or not cause[len(text)].isalnum(), inc.title


def test_clip_and_plain():
    assert plain("The [Allegro](https://web") == "The Allegro"
    assert plain("see [the docs](https://x.org/a) and `xtime_lock` **now**") == "see the docs and xtime_lock now"
    assert plain('"At approximately 14:01, a Redis instance') == "At approximately 14:01, a Redis instance"
    assert plain("a [Shellshock](https://en.wikipedia.org/wiki/Shellshock_(software_bug)) bug") == "a Shellshock bug"
    assert clip("alpha beta gamma", 12) == "alpha beta"
    assert clip("CPU exhaustion (catastrophic backtracking) on edge routers", 30) == "CPU exhaustion"
    assert clip("Porting old Careers 2.0 code.", 200) == "Porting old Careers 2.0 code"


@needs_dataset
def test_rows_cut_by_the_dataset_are_made_whole():
    facts = {f.id: f for f in read_all(DATASET_ROWS)}
    assert facts["incident_072"].root_cause.startswith("The Allegro platform suffered a failure of a subsystem")
    assert facts["incident_175"].root_cause.startswith("Porting old Careers 2.0 code to the new Developer Story")
    assert facts["incident_073"].duplicate_of == "incident_010"            # same postmortem, dated from it
    assert facts["incident_073"].day == facts["incident_010"].day
    data = demo.build(DATASET_ROWS)
    titles = {i.name: i.title for i in data.incidents}
    assert any(t.startswith("Allegro: The Allegro platform suffered") for t in titles.values())


@pytest.mark.parametrize("rows", ROW_SETS)
def test_guides_quote_the_dataset(rows):
    """Runbooks and troubleshooting guides say only what the rows say: every cause they list is a
    row's root cause, every fix a sentence of a row, every source a row's link."""
    facts = read_all(rows)
    causes = {f.root_cause.rstrip(".") for f in facts}
    sentences = {s.rstrip(".") for f in facts for s in [*f.fixes, *f.story, *(x.text for x in f.lines)]}
    sources = {f.source for f in facts}
    data = demo.build(rows)
    guides = [a for a in data.articles if a.fields["article_type"] in ("RUNBOOK", "TROUBLESHOOTING")]
    assert guides
    for a in guides:
        content = a.fields["content"]
        for line in content.splitlines():
            if line.startswith(("- [ ] ", "- **Cause:** ")):
                said = line.split("] ", 1)[1] if line.startswith("- [ ]") else line.split(":** ", 1)[1]
                assert said.rsplit(" — ", 1)[0].rstrip(".") in causes, line
        fixes = ""
        if a.fields["article_type"] == "RUNBOOK":
            fixes = content.split("## 2. Restore service", 1)[1].split("## 3.")[0]
        for line in fixes.splitlines():
            if line.startswith("- ") and "does not say" not in line:
                assert line[2:].rsplit(" — ", 1)[0].rstrip(".") in sentences, line
        assert {r["url"] for r in a.fields["external_references"]} <= sources
        assert a.related, a.title


def test_the_documented_search_matches_the_built_data():
    """The spec's example (RUNBOOK/TROUBLESHOOTING, Database, INTERMEDIATE/ADVANCED) has published
    articles a viewer with INTERNAL clearance may read, in either row set."""
    for rows in [demo.BUILT_IN] + ([DATASET_ROWS] if DATASET_ROWS else []):
        hits = [a for a in demo.build(rows).articles
                if a.fields["article_type"] in demo.SPEC_SEARCH["article_types"]
                and a.fields["category"] in demo.SPEC_SEARCH["categories"]
                and a.fields["difficulty_level"] in demo.SPEC_SEARCH["difficulty_levels"]
                and a.fields["status"] == "PUBLISHED" and a.fields["data_classification"] in ("PUBLIC", "INTERNAL")]
        assert {a.fields["article_type"] for a in hits} == {"RUNBOOK", "TROUBLESHOOTING"}


# --- seeded through the services, served through the API ------------------------------------------

@contextlib.asynccontextmanager
async def demo_api(rows):
    """An API on a database and index prefix of its own, seeded as `ikl seed_demo` seeds."""
    from app.indexing import outbox
    from app.main import create_app
    from app.settings import Settings
    from app.users import service as users
    from indexers import registry
    from indexers.base import alias_targets

    tag = uuid.uuid4().hex[:6]
    application = create_app(Settings(mongodb_db=f"ikl_demo_{tag}", index_prefix=f"demo{tag}"))
    async with application.router.lifespan_context(application):
        bk = application.state.backends
        try:
            importer = await users.ensure_user(bk, data=demo.IMPORTER)
            counts = (await demo.seed_incidents(bk, user=importer, rows=rows),
                      await demo.seed_articles(bk, user=importer, rows=rows))
            await outbox.flush(bk)
            for name in registry():
                await bk.search.indices.refresh(index=bk.index_alias(name))
            transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield bk, client, importer, counts
        finally:
            for d in registry().values():
                for target in await alias_targets(bk, d):
                    await bk.search.indices.delete(index=target)
            await bk.client.drop_database(bk.settings.mongodb_db)


async def token_for(bk, username: str) -> dict[str, str]:
    from app.users import service as users

    user = await users.get_user_by_username(bk, username=username)
    return {"Authorization": f"Token {await users.issue_token(bk, user=user)}"}


async def snapshot(bk) -> dict:
    """What a fresh start shows, without what the services draw at random: ids, times, and the id
    part of article slugs (links between articles included)."""
    incidents = [{k: d[k] for k in ("name", "namespace", "title", "severity", "status", "assignee", "root_cause",
                                    "resolution", "detected_at", "resolved_at")}
                 | {"events": [(e["timestamp"], e["type"], e["source"], e["message"]) for e in d["timeline"]]}
                 async for d in bk.mongo.incidents.find({}).sort("name", 1)]
    names = {d["_id"]: d["name"] async for d in bk.mongo.incidents.find({}, {"name": 1})}
    docs = await bk.mongo.articles.find({}).sort("title", 1).to_list(None)
    stable = {d["slug"]: d["slug"][:-9] for d in docs}  # drop "-<8 hex digits of the id>"

    def unslug(text: str) -> str:
        return LINK.sub(lambda m: f"]({stable[m[1]]})", text)

    articles = [{k: d.get(k) for k in ("title", "article_type", "status", "difficulty_level", "data_classification",
                                       "is_featured", "view_count", "rating_count", "rating_sum", "bookmark_count",
                                       "category", "subcategory", "tags", "summary")}
                | {"slug": stable[d["slug"]], "content": unslug(d["content"]),
                   "related": sorted(names[i] for i in d.get("related_incidents") or [])} for d in docs]
    return {"incidents": incidents, "articles": articles}


async def test_built_in_seed_is_the_same_on_every_fresh_start(stack):
    rows = demo.BUILT_IN
    data = demo.build(rows)
    async with demo_api(rows) as (bk, client, importer, counts):
        assert counts == (len(data.incidents), len(data.articles))
        first = await snapshot(bk)
        assert [i["name"] for i in first["incidents"]] == sorted(i.name for i in data.incidents)
        assert sorted(a["title"] for a in first["articles"]) == sorted(a.title for a in data.articles)
        # every link between articles leads to an article
        slugs = {d["slug"] async for d in bk.mongo.articles.find({}, {"slug": 1})}
        async for d in bk.mongo.articles.find({}, {"content": 1}):
            for target in LINK.findall(d["content"]):
                assert target in slugs
        # the documented search finds the built-in set's database guides too
        r = await client.post(BASE + "search/", json=demo.SPEC_SEARCH, headers=await token_for(bk, "demo-oncall"))
        assert r.status_code == 200 and r.json()["total_count"] > 0, r.text
        # seeding again changes nothing
        assert await demo.seed_incidents(bk, user=importer, rows=rows) == 0
        assert await demo.seed_articles(bk, user=importer, rows=rows) == 0
        assert await snapshot(bk) == first
    async with demo_api(rows) as (bk, client, importer, counts):
        assert await snapshot(bk) == first


@pytest.fixture(scope="module")
async def seeded(stack):
    """The API over the demo data `dev.py run` seeds: the dataset when it is here, else the built-in set."""
    rows = DATASET_ROWS or demo.BUILT_IN
    async with demo_api(rows) as (bk, client, importer, counts):
        yield {"bk": bk, "client": client, "data": demo.build(rows), "counts": counts,
               "admin": await token_for(bk, importer.username), "oncall": await token_for(bk, "demo-oncall"),
               "support": await token_for(bk, "demo-support"), "sre": await token_for(bk, "demo-sre")}


async def test_the_documented_search_example_finds_runbooks_on_a_fresh_start(seeded):
    client = seeded["client"]
    for who in ("oncall", "admin"):  # a viewer with INTERNAL clearance, and the admin `dev.py run` prints
        r = await client.post(BASE + "search/", json=demo.SPEC_SEARCH, headers=seeded[who])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total_count"] > 0 and body["results"], who
        assert {x["article_type"] for x in body["results"]} == {"RUNBOOK", "TROUBLESHOOTING"}
        assert all(x["category"] == "Database" for x in body["results"])
        top = body["results"][0]
        assert {"database", "connection"} <= set(top["matching_keywords"]), top


async def test_every_filter_value_lists_something(seeded):
    client, admin = seeded["client"], seeded["admin"]

    async def count(path: str, **params) -> int:
        r = await client.get(path, params=params, headers=admin)
        assert r.status_code == 200, r.text
        return r.json()["count"]

    for field, enum in (("article_type", ArticleType), ("status", ArticleStatus),
                        ("difficulty_level", Difficulty), ("data_classification", Classification)):
        for v in values(enum):
            assert await count(BASE, **{field: v}) > 0, (field, v)
    assert await count(BASE, is_featured="true") > 0
    for field, enum in (("severity", Severity), ("status", Status)):
        for v in values(enum):
            assert await count("/api/v1/incidents/", **{field: v}) > 0, (field, v)
    namespaces = {i.namespace for i in seeded["data"].incidents}
    assert len(namespaces) >= 4
    in_flight = set()
    for ns in namespaces:
        assert await count("/api/v1/incidents/", namespace=ns) > 0
        if await count("/api/v1/incidents/", namespace=ns, status="OPEN,INVESTIGATING,MITIGATED"):
            in_flight.add(ns)
    assert len(in_flight) >= 2
    stats = (await client.get(BASE + "statistics/", headers=admin)).json()
    assert stats["total_views"] > 0 and stats["total_ratings"] > 0 and stats["total_bookmarks"] > 0
    assert stats["featured_count"] > 0 and stats["most_viewed"][0]["view_count"] > 0


async def test_timelines_use_every_event_type(seeded):
    bk = seeded["bk"]
    types = await bk.mongo.incidents.distinct("timeline.type")
    assert set(types) == values(EventType)
    inc = await bk.mongo.incidents.find_one({"status": "MITIGATED"})
    r = await seeded["client"].get(f"/api/v1/incidents/{inc['name']}/timeline", headers=seeded["oncall"])
    assert r.status_code == 200
    kinds = [e["type"] for e in r.json()["events"]]
    assert kinds[0] == "Detection" and "Resolution" not in kinds and "StatusChange" in kinds


async def test_classification_shows_between_demo_users(seeded):
    client = seeded["client"]

    async def classes(who: str) -> set[str]:
        stats = (await client.get(BASE + "statistics/", headers=seeded[who])).json()
        seen = set()
        for c in values(Classification):
            r = await client.get(BASE, params={"data_classification": c, "page_size": 1}, headers=seeded[who])
            if r.json()["count"]:
                seen.add(c)
        assert stats["total_articles"] > 0
        return seen

    assert await classes("support") == {"PUBLIC"}
    assert await classes("oncall") == {"PUBLIC", "INTERNAL"}
    assert await classes("sre") == {"PUBLIC", "INTERNAL", "CONFIDENTIAL"}
    assert await classes("admin") == values(Classification)
    # viewers see published articles only; the drafts are there for editors
    r = await client.get(BASE, params={"status": "DRAFT"}, headers=seeded["oncall"])
    assert r.json()["count"] == 0
    r = await client.get(BASE, params={"status": "DRAFT"}, headers=seeded["sre"])
    assert r.json()["count"] > 0

"""Demo data: incidents and articles from dataset rows, seeded once into empty collections."""

from __future__ import annotations

from app import demo


def test_rows_become_valid_incidents_and_articles():
    row = {**demo.BUILT_IN[0], "date": "Unknown", "id": "incident_061"}
    inc = demo.incident_from_row(row, "INC-20200302-001")
    assert inc.status.value == "RESOLVED" and inc.severity.value == "HIGH" and inc.category == "Memory"
    assert [e.type.value for e in inc.timeline] == ["Detection", "Analysis", "Resolution"]
    assert inc.detected_at.year == 2020  # an unknown date gets a stable stand-in
    art = demo.article_from_row(row)
    assert art.article_type.value == "POSTMORTEM_SUMMARY" and art.status.value == "PUBLISHED"
    assert art.title.startswith("Example Pay:")


async def test_seeding_is_idempotent(stack, tokens):
    from app.backends import connect
    from app.db import ensure_indexes
    from app.settings import Settings

    bk = connect(Settings(mongodb_db="ikl_demo_test", index_prefix="demo"))
    try:
        await ensure_indexes(bk)
        admin = tokens["admin_user"]
        assert await demo.seed_incidents(bk, user=admin, rows=demo.BUILT_IN) == 3
        assert await demo.seed_articles(bk, user=admin, rows=demo.BUILT_IN) == 3
        assert await demo.seed_incidents(bk, user=admin, rows=demo.BUILT_IN) == 0
        assert await demo.seed_articles(bk, user=admin, rows=demo.BUILT_IN) == 0
        assert await bk.mongo.incidents.count_documents({}) == 3
        names = sorted([d["name"] async for d in bk.mongo.incidents.find({}, {"name": 1})])
        assert names == ["INC-20260110-001", "INC-20260202-001", "INC-20260319-001"]
    finally:
        await bk.client.drop_database("ikl_demo_test")
        await bk.close()

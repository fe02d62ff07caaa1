"""Settings: the published page is made from the settings' descriptions; IKL_SEARCH_REPLICAS reaches the
search indices, those built and the live one."""

from __future__ import annotations

import json
import uuid

import pytest

from app.settings import Settings, settings_page
from tests.conftest import ROOT


def test_the_settings_page_is_made_from_the_descriptions():
    page = (ROOT / "docs" / "settings.md").read_text()
    assert page.rstrip("\n") == settings_page(markdown=True).rstrip("\n"), \
        "docs/settings.md is stale: `ikl settings --markdown > docs/settings.md`"
    rows = json.loads(settings_page())
    assert len(rows) == len(Settings.model_fields) and all(r["description"] for r in rows)
    assert {"variables": ["MONGODB_URL", "IKL_MONGODB_URL"]}.items() <= rows[1].items()


@pytest.fixture
async def apart(stack):
    from app.backends import connect
    from app.settings import get_settings

    tag = uuid.uuid4().hex[:8]
    settings = get_settings().model_copy(update={"mongodb_db": f"ikl_replicas_{tag}", "index_prefix": f"rep{tag}"})
    bk = connect(settings)
    try:
        yield bk
    finally:
        await bk.search.indices.delete(index=f"rep{tag}-*", ignore_unavailable=True)
        await bk.client.drop_database(settings.mongodb_db)
        await bk.close()


async def _replicas(bk, index) -> list[int]:
    from indexers.base import alias_targets

    out = []
    for target in await alias_targets(bk, index):
        got = await bk.search.indices.get_settings(index=target, name="index.number_of_replicas")
        out.append(int(got[target]["settings"]["index"]["number_of_replicas"]))
    return out


async def test_replicas_are_set_on_a_new_index_and_on_the_live_one(apart):
    from indexers import registry
    from indexers.base import apply_replicas, reindex

    index = registry()["articles"]
    apart.settings = apart.settings.model_copy(update={"search_replicas": 1})
    await reindex(apart, index)
    assert await _replicas(apart, index) == [1]
    assert await apply_replicas(apart, index) == []  # as wanted: nothing to do

    apart.settings = apart.settings.model_copy(update={"search_replicas": 0})  # the next start's setting
    assert len(await apply_replicas(apart, index)) == 1
    assert await _replicas(apart, index) == [0]

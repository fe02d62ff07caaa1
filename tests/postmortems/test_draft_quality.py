"""Draft quality on the real stack: a draft from a title alone is not confident."""

from __future__ import annotations

from tests.postmortems.test_rest import BASE, INCIDENTS, create_pm


async def test_title_only_draft_is_below_half_confidence(client, editor):
    r = await client.post(INCIDENTS, headers=editor, json={"title": "Something was slow", "severity": "HIGH"})
    assert r.status_code == 201, r.text
    inc = r.json()
    r = await client.post(f"{INCIDENTS}{inc['name']}/resolve/", headers=editor, json={"resolution": "It went away"})
    assert r.status_code == 200, r.text
    pm = await create_pm(client, editor, inc, executive_summary="")
    r = await client.post(f"{BASE}{pm['id']}/generate_automated/", headers=editor)
    assert r.status_code == 200, r.text
    assert r.json()["confidence_score"] < 0.5  # was 0.56
    got = (await client.get(f"{BASE}{pm['id']}/", headers=editor)).json()
    assert got["generation_confidence"] == r.json()["confidence_score"]
    assert "Resolution: It went away" not in got["executive_summary"] and "0 seconds" not in got["executive_summary"]
    assert got["action_items"] == [] and got["lessons_learned"] == ""  # nothing shown to learn from

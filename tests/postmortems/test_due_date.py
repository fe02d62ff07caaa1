"""The default due date of a postmortem: the severity's days (IKL_POSTMORTEM_DUE_DAYS) after its incident's
resolution, but never less than 2 days after its creation — so a postmortem
drafted days after the incident (by hand, or by `generate_postmortems`, which looks 7 days back) is not
overdue the moment it is created, while one drafted on the day of resolution keeps the severity's rule."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from app.postmortems.service import default_due_date
from app.timefmt import utcnow
from tests.postmortems.test_batch import make, own  # noqa: F401 - the fixture
from tests.postmortems.test_rest import BASE, create_pm, new_incident

MINUTE = timedelta(minutes=1)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_postmortem_of_an_incident_resolved_days_ago_is_not_overdue_when_created(client, editor):
    now = utcnow()
    resolved = (now - timedelta(days=6)).replace(microsecond=0)
    inc = await new_incident(client, editor, severity="HIGH", status="RESOLVED", resolved_at=_iso(resolved))
    before = utcnow()
    pm = await create_pm(client, editor, inc, severity=None)
    assert pm["is_overdue"] is False
    due = _at(pm["due_date"])
    # HIGH is 5 days after resolution (yesterday): the floor, 2 days after creation, wins
    assert due > resolved + timedelta(days=5)
    assert before + timedelta(days=2) - MINUTE < due < utcnow() + timedelta(days=2) + MINUTE
    overdue = (await client.get(f"{BASE}overdue/", headers=editor, params={"page_size": 100})).json()
    assert pm["id"] not in [p["id"] for p in overdue["results"]]


async def test_a_postmortem_drafted_on_the_day_of_resolution_keeps_the_severity_rule(client, editor):
    resolved = (utcnow() - timedelta(hours=1)).replace(microsecond=0)
    for severity, days in (("CRITICAL", 3), ("HIGH", 5), ("MEDIUM", 10), ("LOW", 20)):
        inc = await new_incident(client, editor, severity=severity, status="RESOLVED", resolved_at=_iso(resolved))
        pm = await create_pm(client, editor, inc, severity=None)
        assert pm["due_date"] == _iso(resolved + timedelta(days=days)), severity
        assert pm["is_overdue"] is False
    # resolved 2 days ago, CRITICAL: due tomorrow by the severity alone; given 2 days from creation instead
    inc = await new_incident(client, editor, severity="CRITICAL", status="RESOLVED",
                             resolved_at=_iso(utcnow() - timedelta(days=2)))
    before = utcnow()
    due = _at((await create_pm(client, editor, inc, severity=None))["due_date"])
    assert before + timedelta(days=2) - MINUTE < due < utcnow() + timedelta(days=2) + MINUTE
    # a due date given is kept as given, even one already past
    pm = await create_pm(client, editor, inc, due_date="2024-01-29T00:00:00Z")
    assert pm["due_date"] == "2024-01-29T00:00:00Z" and pm["is_overdue"] is True


def test_the_rule_as_a_function():
    now = datetime(2026, 3, 12, 9, 0, tzinfo=timezone.utc)
    days = {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 7, "LOW": 14}
    bk = SimpleNamespace(settings=SimpleNamespace(postmortem_due_days=days, postmortem_due_min_days=2.0))
    week_ago = {"resolved_at": now - timedelta(days=7)}
    assert default_due_date(bk, severity="LOW", incident=week_ago, now=now) == now + timedelta(days=7)  # 14 after
    assert default_due_date(bk, severity="HIGH", incident=week_ago, now=now) == now + timedelta(days=2)  # floor
    half = SimpleNamespace(settings=SimpleNamespace(postmortem_due_days=days, postmortem_due_min_days=0.5))
    assert default_due_date(half, severity="HIGH", incident=week_ago, now=now) == now + timedelta(hours=12)
    assert default_due_date(bk, severity="MEDIUM", incident={}, now=now) == now + timedelta(days=7)  # unresolved
    assert default_due_date(bk, severity="UNHEARD", incident={}, now=now) == now + timedelta(days=7)  # MEDIUM's
    # configured below the floor: created at resolution, the floor still gives 2 days
    assert default_due_date(bk, severity="CRITICAL", incident={"resolved_at": now}, now=now) == now + timedelta(days=2)


async def test_generate_postmortems_drafts_for_the_last_7_days_are_not_overdue(own, tokens):  # noqa: F811
    from app.postmortems import batch
    from app.postmortems.service import is_overdue

    bk, _ = own
    now = utcnow()
    old = await make(bk, tokens["admin_user"], "Checkout outage", resolved_at=now - timedelta(days=6))
    fresh = await make(bk, tokens["admin_user"], "Payments down", severity="CRITICAL",
                       resolved_at=now - timedelta(hours=2))
    results = await batch.generate_for_recent(bk, days=7)
    assert {r.incident_id for r in results if r.action == batch.CREATED} == {old["_id"], fresh["_id"]}, results
    pms = {pm["incident"]: pm async for pm in bk.mongo.postmortems.find({})}
    assert not any(is_overdue(pm) for pm in pms.values())
    assert pms[old["_id"]]["due_date"] >= now + timedelta(days=2) - MINUTE
    assert abs(pms[fresh["_id"]]["due_date"] - (fresh["resolved_at"] + timedelta(days=3))) < timedelta(seconds=1)

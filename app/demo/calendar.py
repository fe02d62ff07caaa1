"""When each demo incident happened: the rows laid on the weeks before the day the demo is loaded.

The dataset's own dates span decades (and 81 of its 200 rows have none: a stand-in from their row number),
so shifting them all by one number of weeks would leave a single incident in the last month and nothing
for `update_learning_patterns --days 30`, overdue postmortems or weekly trends to show. The demo
organisation meets the same incidents instead, in the last `weeks` weeks (about PER_WEEK a week, at most
MAX_WEEKS weeks), each row moved by a whole number of weeks of its own — its weekday and time of day, and
so every duration of its timeline, stay the row's:

- the incidents still in flight happened in the last seven days (week 0: the seven days before `today`);
- the resolved ones are laid end to end, older first, by cause: rows of one category and topic (the
  groups the runbooks are written from) follow each other, each group in its rows' own date order, the
  groups in the order of their latest row, and the groups an incident in flight belongs to last — a
  cause that keeps coming back ends in the recent weeks, next to the incident that brings it back;
- a duplicate moves with the row it duplicates;
- nothing happens on or after `today`: a row whose timeline would end then moves one more week back.

A pure function of the rows and `today` (the seeder passes the day it loads the demo): every fresh start
gets the same incidents on the same days relative to `today`."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from typing import Callable

from app.demo.facts import Fact

PER_WEEK = 10    # incidents (duplicates aside) a week
MAX_WEEKS = 16   # the demo's history at most: 160 incidents and more share the 16 weeks before today
WEEK = timedelta(days=7)


def default_today(facts: list[Fact]) -> date:
    """The day after the newest row (what `build` uses when no day is given: no clock)."""
    return max((f.day for f in facts), default=datetime(2020, 1, 1, tzinfo=timezone.utc)).date() + timedelta(days=1)


def weeks_for(n: int) -> int:
    return max(1, min(MAX_WEEKS, math.ceil(n / PER_WEEK)))


def slots(facts: list[Fact], in_flight: set[str]) -> dict[str, int]:
    """Week index (0: the last seven days) of each incident that is not a duplicate (module docstring)."""
    canon = [f for f in facts if not f.duplicate_of]
    key = lambda f: (f.category, f.topic)  # noqa: E731
    recurring = {key(f) for f in canon if f.id in in_flight}
    groups: dict[tuple[str, str], list[Fact]] = defaultdict(list)
    for f in canon:
        if f.id not in in_flight:
            groups[key(f)].append(f)
    sequence: list[Fact] = []
    for k, members in sorted(groups.items(), key=lambda kv: (kv[0] in recurring,
                                                                 max((f.day, f.id) for f in kv[1]), kv[0])):
        sequence += sorted(members, key=lambda f: (f.day, f.id))
    weeks, n = weeks_for(len(canon)), len(sequence)
    out = {f.id: (n - 1 - r) * weeks // n for r, f in enumerate(sequence)}
    out.update({i: 0 for i in in_flight})
    return out


def in_week(day: datetime, week: int, today: date) -> timedelta:
    """The whole number of weeks that moves `day` into week `week` before `today`, on its own weekday."""
    start = today - timedelta(days=7 * (week + 1))
    target = start + timedelta(days=(day.weekday() - start.weekday()) % 7)
    return timedelta(days=(target - day.date()).days)


def place(facts: list[Fact], in_flight: set[str], today: date,
          ends: Callable[[Fact], datetime]) -> list[Fact]:
    """The facts moved onto the demo calendar (same order). `ends(fact)`: when the incident's timeline ends
    (its last event), for the rule that nothing happens on or after `today`."""
    week = slots(facts, in_flight)
    by_id = {f.id: f for f in facts}
    unit: dict[str, list[Fact]] = defaultdict(list)   # a row and its duplicates move together
    for f in facts:
        unit[f.duplicate_of if f.duplicate_of in by_id else f.id].append(f)
    cutoff = datetime.combine(today, time(), tzinfo=timezone.utc)
    delta: dict[str, timedelta] = {}
    for head, members in unit.items():
        d = in_week(by_id[head].day, week.get(head, 0), today)
        while max(ends(m) for m in members) + d >= cutoff:
            d -= WEEK
        for m in members:
            delta[m.id] = d
    return [f.moved(delta[f.id]) for f in facts]

"""The documented command right after a fresh start: the workers' first scheduled mining run is due at once,
so `ikl update_learning_patterns --days 30 --min-frequency 3` often finds it running. The command waits for
it (saying so), then runs its own — still one run at a time — instead of exiting 75."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from datetime import timedelta

from app.patterns import run_records, runs
from app.timefmt import utcnow
from tests.conftest import ROOT
from tests.patterns.test_run_records import pool
from tests.postmortems.test_batch import own  # noqa: F401 - the fixture


async def _line(stream: asyncio.StreamReader, wanted: str, seen: list[str], timeout: float = 90.0) -> None:
    """Read the command's output until a line holds `wanted`."""
    async def read() -> None:
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError(f"the command ended before saying {wanted!r}: {''.join(seen)}")
            seen.append(raw.decode())
            if wanted in seen[-1]:
                return

    await asyncio.wait_for(read(), timeout)


async def test_the_documented_command_waits_for_the_scheduled_run_then_runs(own, tokens, monkeypatch):  # noqa: F811
    bk, env = own
    await pool(bk, tokens["admin_user"])
    assert await runs.due(bk) is True  # a fresh install: the schedule's first run is due at once

    # the worker's scheduled run, held in its clustering step until the command is seen waiting for it
    release = threading.Event()
    real_mine = runs.mining.mine

    def held_mine(*args, **kwargs):
        release.wait(120)
        return real_mine(*args, **kwargs)

    monkeypatch.setattr(runs.mining, "mine", held_mine)
    scheduled = asyncio.create_task(runs.run(bk, days=30, min_frequency=3, trigger="schedule"))
    try:
        for _ in range(100):
            if (running := await run_records.running(bk)) is not None:
                break
            await asyncio.sleep(0.05)
        assert running is not None and running["trigger"] == "schedule"

        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.cli", "update_learning_patterns", "--days", "30", "--min-frequency", "3",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250", **env})
        seen: list[str] = []
        await _line(proc.stdout, "waiting for it to end", seen)
        assert running["_id"] in seen[-1] and "schedule" in seen[-1]
        assert await bk.mongo.pattern_mining_runs.count_documents({}) == 1  # it started nothing meanwhile
    finally:
        release.set()
    first = await scheduled
    rest, _ = await asyncio.wait_for(proc.communicate(), 120)
    out = "".join(seen) + rest.decode()
    assert proc.returncode == 0, out
    assert f"mining run {first.run_id} ended" in out and "COMPLETED" in out and "starting this one" in out
    assert "unchanged" in out and "patterns:" in out  # its own run: what the scheduled one found, unchanged

    done = {d["trigger"]: d for d in await bk.mongo.pattern_mining_runs.find().to_list(None)}
    assert set(done) == {"schedule", "command"} and all(d["status"] == "COMPLETED" for d in done.values())
    assert done["command"]["started_at"] >= done["schedule"]["completed_at"]  # one run at a time
    assert done["command"]["counts"]["unchanged"] == done["schedule"]["counts"]["created"] >= 1
    assert await bk.mongo.learning_patterns.count_documents({}) == done["schedule"]["counts"]["created"]


async def test_a_run_that_died_is_waited_for_until_its_lease_runs_out(own, tokens):  # noqa: F811
    bk, _ = own
    await pool(bk, tokens["admin_user"])
    dead, created = await run_records.begin(bk, trigger="schedule", days=30, min_frequency=3)
    assert created  # its worker is gone: nobody renews the lease, which runs out in 2 s
    await bk.mongo.pattern_mining_runs.update_one({"_id": dead["_id"]},
                                                  {"$set": {"leased_until": utcnow() + timedelta(seconds=2)}})
    seen: list[tuple[str, bool]] = []
    report = await runs.run(bk, min_frequency=3, wait=30,
                            waiting=lambda other, seconds: seen.append((other["_id"], bool(other.get("active")))))
    assert report.run_id and report.rows and report.already_running is None
    assert [w["_id"] for w in report.waited] == [dead["_id"]] and report.waited[0]["status"] == "FAILED"
    assert seen[0] == (dead["_id"], True) and seen[-1] == (dead["_id"], False)
    assert (await bk.mongo.pattern_mining_runs.find_one({"_id": report.run_id}))["status"] == "COMPLETED"

    # without waiting (the workers' schedule, `--wait 0`): a running run is reported, nothing is done
    held, _ = await run_records.begin(bk, trigger="schedule", days=30, min_frequency=3)
    busy = await runs.run(bk, min_frequency=3)
    assert busy.already_running["_id"] == held["_id"] and busy.run_id is None and busy.waited == []

"""Confidence calibration: the fit, the expected calibration error, and the refit from ratings (on a
database of its own, so other tests' ratings do not count)."""

from __future__ import annotations

import math
import random
import uuid

from app.recommendations import calibration, engine
from tests.postmortems.test_batch import own  # noqa: F401 - the fixture


def test_fit_recovers_a_known_logistic_and_lowers_the_error():
    rnd = random.Random(3)
    true = {"a": 9.0, "b": -5.0}
    samples = []
    for _ in range(4000):
        x = rnd.random()
        samples.append((x, int(rnd.random() < 1 / (1 + math.exp(-(true["a"] * x + true["b"]))))))
    got = calibration.fit(samples)
    assert abs(got["a"] - 9.0) < 1.0 and abs(got["b"] + 5.0) < 0.6
    before = calibration.ece((engine.calibrate(x, {"a": 2.0, "b": 0.0}), y) for x, y in samples)
    after = calibration.ece((engine.calibrate(x, got), y) for x, y in samples)
    assert after < 0.03 < before
    assert calibration.ece([]) == 0.0 and calibration.ece([(0.8, 1), (0.8, 0)]) == 0.3


async def test_refit_from_ratings_only_with_enough_and_only_when_better(own):  # noqa: F811
    bk, _ = own
    rnd = random.Random(5)

    async def rated(n: int, rec_type: str):
        docs = []
        for _ in range(n):
            raw = rnd.random()
            helped = rnd.random() < 1 / (1 + math.exp(-(12 * raw - 8)))  # helps less often than the default says
            docs.append({"_id": str(uuid.uuid4()), "incident": str(uuid.uuid4()), "recommendation_type": rec_type,
                         "target": str(uuid.uuid4()), "raw_score": raw,
                         "effectiveness_rating": rnd.choice([4, 5]) if helped else rnd.choice([1, 2])})
        await bk.mongo.recommendations.insert_many(docs)

    await rated(calibration.MIN_RATINGS - 1, "EXPERT")
    await rated(400, "KNOWLEDGE_ARTICLE")
    report = await calibration.refit(bk)
    assert report["EXPERT"]["ratings"] == calibration.MIN_RATINGS - 1 and report["EXPERT"]["kept"] is False
    art = report["KNOWLEDGE_ARTICLE"]
    assert art["kept"] and art["ece_after"] < art["ece_before"]
    params = await calibration.current(bk)
    assert params["KNOWLEDGE_ARTICLE"] == {"a": art["a"], "b": art["b"]} != engine.DEFAULT_CALIBRATION
    assert params["EXPERT"] == engine.DEFAULT_CALIBRATION
    # a raw 0.5 was ~50 % confident; the ratings say such articles help far less often
    assert engine.calibrate(0.5, params["KNOWLEDGE_ARTICLE"]) < 0.3

"""Predictions in GraphQL (`Incident.predictions`): the REST answer (app/predictions/outputs.py) as types made
from the same output models. The resolver only calls app/predictions/service.py."""

from __future__ import annotations

import strawberry
from strawberry.experimental.pydantic import type as pydantic_type

from app.predictions import outputs, service
from schema.context import Info

strawberry.enum(outputs.Level, name="PredictionLevel")


@pydantic_type(model=outputs.LikelyCause, all_fields=True, name="LikelyRootCause")
class LikelyCause:
    pass


@pydantic_type(model=outputs.TimeToResolve, all_fields=True, name="PredictedTimeToResolve",
               description="Seconds from detection to resolution (null: too few samples to say).")
class TimeToResolve:
    pass


@pydantic_type(model=outputs.BasedOnIncident, all_fields=True, name="PredictionIncident")
class BasedOnIncident:
    pass


@pydantic_type(model=outputs.BasedOnPattern, all_fields=True, name="PredictionPattern")
class BasedOnPattern:
    pass


@pydantic_type(model=outputs.BasedOn, all_fields=True, name="PredictionBasis")
class BasedOn:
    pass


@pydantic_type(model=outputs.Confidence, all_fields=True, name="PredictionConfidence")
class Confidence:
    pass


@pydantic_type(model=outputs.Prediction, all_fields=True, name="IncidentPrediction",
               description="What an incident will likely turn out to be and how long it will likely take, from its "
                           "resolved look-alikes and matched learning patterns, and how sure that is.")
class Prediction:
    pass


async def resolve(info: Info, name: str) -> Prediction:
    data = await service.predict(info.context.backends, name=name, user=info.context.user)
    return Prediction.from_pydantic(outputs.Prediction.model_validate(data))

"""Search indices derived from MongoDB. Each module defines one index: its mapping, how a Mongo
document becomes an index document, and its query builders. `REGISTRY` names them all."""

from __future__ import annotations

from indexers import articles, incidents
from indexers.base import IndexDefinition


def registry() -> dict[str, IndexDefinition]:
    defs = [incidents.INDEX, articles.INDEX]
    return {d.name: d for d in defs}

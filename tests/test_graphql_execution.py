"""The execution context that answers plain leaves at their floor (schema/execution.py) gives the very
document graphql-core gives — data and errors, paths and messages included — for leaves, lists of leaves,
enums, custom scalars, aliases, fragments, directives, fields with resolvers and values a type refuses."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Optional

import pytest
import strawberry

from schema.common import UtcDateTime
from schema.execution import LeafFastPath


@strawberry.enum
class Level(enum.Enum):
    LOW = "LOW"
    HIGH = "HIGH"


@strawberry.type
class Item:
    name: str
    note: Optional[str]
    level: Level
    levels: list[Level]
    tags: list[Optional[str]]
    count: int
    at: datetime
    flag: bool
    key: strawberry.ID

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times


GOOD = dict(name="a", note=None, level=Level.HIGH, levels=[Level.LOW, Level.HIGH], tags=["x", None], count=3,
            at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), flag=True, key="k1")
BROKEN = [Item(**{**GOOD, "name": None}),                     # null for a non-null leaf
          Item(**{**GOOD, "count": "many"}),                  # a value the scalar refuses
          Item(**{**GOOD, "levels": [Level.LOW, None]}),      # null inside a list of non-null leaves
          Item(**{**GOOD, "level": "MEDIUM"}),                # not a value of the enum
          Item(**{**GOOD, "flag": "yes"})]                    # a value Boolean refuses
ODD = Item(**{**GOOD, "name": 5, "flag": 1, "key": 7})        # not the scalars' own Python types, but coerced


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Thing(Named):
    size: int


@strawberry.type
class Query:
    @strawberry.field
    def broken_list(self) -> list[Item]:  # an item's leaf refused: the whole list takes graphql-core's path
        return [Item(**GOOD), BROKEN[0]]

    @strawberry.field
    def maybe_items(self) -> list[Optional[Item]]:
        return [Item(**GOOD), None]

    @strawberry.field
    def strict_items(self) -> list[Item]:  # a null item where none is allowed
        return [Item(**GOOD), None]

    @strawberry.field
    def things(self) -> list[Named]:  # an abstract item type
        return [Thing(name="t", size=2)]

    @strawberry.field
    def typed(self) -> list[Thing]:  # an item of another type than declared
        return [Thing(name="t", size=2), Item(**GOOD)]

    @strawberry.field
    def items(self) -> list[Item]:
        return [Item(**GOOD), Item(**{**GOOD, "name": "b", "note": "n", "tags": []})]

    @strawberry.field
    def broken(self, n: int) -> Optional[Item]:
        return BROKEN[n]

    @strawberry.field
    def odd(self) -> Item:
        return ODD


def schemas():
    kw = dict(query=Query, scalar_overrides={datetime: UtcDateTime})
    return strawberry.Schema(**kw), strawberry.Schema(**kw, execution_context_class=LeafFastPath)


DOCUMENTS = [
    "{ items { name note level levels tags count at flag key } }",
    "{ items { n: name name again: name shout loud: shout(times: 2) __typename } }",
    "{ items { ...F } } fragment F on Item { level ... on Item { levels tags } }",
    "query($s: Boolean!) { items { name note @skip(if: $s) count @include(if: $s) } }",
    *[f"{{ broken(n: {n}) {{ name count level levels flag key }} }}" for n in range(len(BROKEN))],
    "{ a: broken(n: 0) { name } b: items { name } }",
    "{ odd { name flag key count } }",
    "{ brokenList { name count } maybeItems { name level } }",
    "{ strictItems { name } }",
    "{ things { name ... on Thing { size } } typed { name size } }",
    "{ items { name } again: items { name level } }",
]


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_the_same_answer_as_graphql_core(document):
    plain, fast = schemas()
    one = await plain.execute(document, variable_values={"s": True})
    two = await fast.execute(document, variable_values={"s": True})
    assert one.data == two.data
    assert [(e.message, e.path, e.locations) for e in one.errors or []] == \
           [(e.message, e.path, e.locations) for e in two.errors or []]
    if "broken" in document:
        assert one.errors  # the refused values do raise


def test_the_service_schema_uses_it():
    from schema.schema import schema

    assert schema.execution_context_class is LeafFastPath

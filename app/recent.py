"""What a process keeps of its recent work: a dict holding the values of the last keys used, least
recently used first (the query vectors of app/embeddings/store.py, the query analyses of
app/articles/ranking.py)."""

from __future__ import annotations

from typing import Any, Hashable


class Recent(dict):
    """A dict of at most `size` entries once trimmed: `use` reads a value and marks it used last, `trim`
    drops the least recently used past `size`."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def use(self, key: Hashable) -> Any:
        """The value of `key` (None when absent), now the most recently used."""
        value = self.pop(key, None)
        if value is not None:
            self[key] = value
        return value

    def trim(self) -> None:
        while len(self) > self.size:
            self.pop(next(iter(self)))

"""Naming and describing a group of incidents: TF-IDF phrases against the whole eligible corpus, which
phrases are informative enough to name a group, and the name itself (the rules: app/patterns/mining.py's
docstring, "Per group"; the wording: app/patterns/wording.py). Pure functions, no I/O."""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from app.patterns import wording
from app.patterns.wording import phrases, tokens

NAME_PHRASES = 3        # phrases in a name
NAME_MIN_GROUP_SHARE = 0.5  # a single word names a group only when the group holds this share of the corpus
                            # documents using it (bench: drops "outage", "network", "cluster", "github"...)
NAME_SERVICES = 3       # services in a fallback name


def tfidf(texts: Sequence[str]) -> np.ndarray:
    """Unit TF-IDF rows over the texts' phrases (the fallback fix vectors)."""
    docs = [Counter(tokens(t)) + Counter(p for p in phrases(t) if " " in p) for t in texts]
    df = Counter(p for d in docs for p in d)
    vocab = {p: k for k, p in enumerate(sorted(df))}
    X = np.zeros((len(texts), max(len(vocab), 1)), np.float32)
    for r, d in enumerate(docs):
        for p, c in d.items():
            X[r, vocab[p]] = (1 + math.log(c)) * (math.log((1 + len(texts)) / (1 + df[p])) + 1)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-9)


class Corpus:
    def __init__(self, texts: Iterable[str]) -> None:
        self.docs = [phrases(t) for t in texts]
        self.df = Counter(p for d in self.docs for p in d)
        self.n = len(self.docs)

    def idf(self, p: str) -> float:
        return math.log((1 + self.n) / (1 + self.df.get(p, 0))) + 1.0


def top_phrases(member_phrases: list[set[str]], corpus: Corpus, k: int, *, by_count_first: bool) -> list[str]:
    n = len(member_phrases)
    need = 2 if n > 2 else n
    counts = Counter(p for d in member_phrases for p in d)
    shared = [p for p, c in counts.items() if c >= need and n >= 2]
    if by_count_first:
        shared.sort(key=lambda p: (-counts[p], -corpus.idf(p), -len(p.split()), p))
    else:
        shared.sort(key=lambda p: (-(counts[p] / n) * corpus.idf(p), -len(p.split()), p))
    chosen: list[str] = []
    for p in shared:
        if any(p in q or q in p for q in chosen):
            continue
        chosen.append(p)
        if len(chosen) == k:
            break
    return chosen


def name_words(members: list[dict], cats: Counter) -> set[str]:
    """Words that say who or where, not what: the members' services and categories (already in the
    pattern's structure; a vendor's name alone says nothing about the cause)."""
    return {t for m in members for s in m.get("affected_services") or [] for t in tokens(str(s))} | \
        {t for c in cats for t in tokens(c)}


def informative(p: str, in_group: int, size: int, corpus: Corpus, where: set[str]) -> bool:
    """Whether a phrase `in_group` of the `size` members share may name their group (module docstring)."""
    words = p.split()
    if all(w in where for w in words):
        return False
    if in_group < NAME_MIN_GROUP_SHARE * corpus.df.get(p, 0):  # common across the corpus
        return False
    return len(words) >= 2 or in_group >= NAME_MIN_GROUP_SHARE * size


def name_weights(member_phrases: list[set[str]], corpus: Corpus, members: list[dict], cats: Counter,
                 ) -> dict[str, float]:
    """The phrases that may name the group (shared by >= 2 members and `informative`), each with its weight:
    share of members x IDF."""
    n = len(member_phrases)
    need = 2 if n > 2 else n
    counts = Counter(p for d in member_phrases for p in d)
    where = name_words(members, cats)
    return {p: (c / n) * corpus.idf(p) for p, c in counts.items()
            if c >= need and n >= 2 and informative(p, c, n, corpus, where)}


def group_name(kind: str, texts: list[str], weights: dict[str, float], members: list[dict], cats: Counter,
               *, late: int = 0) -> str:
    """The group's name (app/patterns/wording.py `name_from`); DETECTION: what the grouping says (`late`:
    how many members were detected late); last, the category and services."""
    category = min(cats.items(), key=lambda kv: (-kv[1], kv[0]))[0] if cats else ""
    if kind == "DETECTION":
        lag = late
        how = ("detected late or first reported by a person" if 0 < lag < len(members) else
               "detected 15 minutes or more after they began" if lag else "first reported by a person")
        return f"{category or 'Unclassified'} incidents {how}"
    if name := wording.name_from(texts, weights, name_words(members, cats)):
        return name
    services = Counter(str(s) for m in members for s in dict.fromkeys(m.get("affected_services") or []))
    top_services = [s for s, _ in sorted(services.items(), key=lambda kv: (-kv[1], kv[0]))[:NAME_SERVICES]]
    return f"{category or 'Recurring'} incidents affecting {', '.join(top_services) or 'several services'}"

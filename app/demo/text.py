"""Text helpers for demo data: markdown-free sentences and clean titles."""

from __future__ import annotations

import re
import unicodedata

_LINK = re.compile(r"\[([^\]\[]*)\]\((?:[^()\s]|\([^()\s]*\))*\)")  # [text](url), url may hold (..)
_CUT_LINK = re.compile(r"\[([^\]\[]*)\]\([^)]*$")         # [text](https://web   (cut off)
_CUT_OPEN = re.compile(r"\[([^\]\[]*)$")                    # [text                (cut off)
_EMPHASIS = re.compile(r"(\*\*|__|`|(?<!\w)_(?=\w)|(?<=\w)_(?!\w))")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”')]*\s+(?=[\"“'(]?[A-Z0-9])")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "approx.", "vs.", "U.S.", "Inc.", "Ltd.", "No.", "St.", "Mr.", "Dr.")
TITLE_MAX = 200


def plain(text: str) -> str:
    """One line of markdown as plain text: links become their text (also when cut off), emphasis
    and code marks go, outer quotes and whitespace are trimmed."""
    text = _LINK.sub(r"\1", text or "")
    text = _CUT_LINK.sub(r"\1", text)
    text = _CUT_OPEN.sub(r"\1", text)
    text = _EMPHASIS.sub("", text)
    text = re.sub(r"\s+", " ", text).strip()
    if text[:1] and text[:1] in "\"“" and _quotes(text) % 2:  # a quotation the dataset cut open
        text = text[1:]
    if text[-1:] and text[-1:] in "\"”" and _quotes(text) % 2:
        text = text[:-1]
    return text.strip()


def _quotes(text: str) -> int:
    return text.count('"') + text.count("“") + text.count("”")


def sentences(text: str) -> list[str]:
    """Plain sentences of a paragraph (a full stop inside `2.0` or `e.g.` does not end one)."""
    text = plain(text)
    out: list[str] = []
    for part in _SENTENCE_END.split(text):
        part = part.strip()
        if not part:
            continue
        if out and out[-1].endswith(_ABBREVIATIONS):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return out


def balanced(text: str) -> bool:
    return all(text.count(a) == text.count(b) for a, b in ("()", "[]", "{}"))


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary, never inside brackets, without trailing
    punctuation."""
    text = plain(text)
    if len(text) > limit:
        text = text[:limit + 1]
        text = text[:text.rfind(" ")] if " " in text else text[:limit]
    while text and not balanced(text):  # drop a clause whose bracket the cut left open
        cut = max(text.rfind("("), text.rfind("["), text.rfind("{"))
        if cut <= 0 or text.count(text[cut]) <= text.count({"(": ")", "[": "]", "{": "}"}[text[cut]]):
            text = re.sub(r"[()\[\]{}]", "", text)  # stray brackets in the source text itself
            break
        text = text[:cut]
    return text.rstrip(" ,;:-–—.").strip()


def title(prefix: str, text: str) -> str:
    """`prefix: text`, at most TITLE_MAX characters, cut at a word boundary."""
    text = clip(text, TITLE_MAX - len(prefix) - 2)
    return f"{prefix}: {text}" if prefix else text


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def slug_word(text: str) -> str:
    """`Human Error` -> `human-error` (tags, keywords)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")

"""Text and time helpers of the postmortem draft (app/postmortems/generator.py), pure: timestamps and
durations as the draft writes them, sentences and clipped quotes, what the data marks as unknown, the words of
a text (root causes compared by them), and what an event's text says (a human report, an alert, a manual step,
impact figures in its details)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

SAME_ROOT_CAUSE = 0.5                   # word overlap (Jaccard) from which two root causes are the same
ITEM_CAUSE_OVERLAP = 0.5                # share of an action item title's words found in the root cause ...
ITEM_CAUSE_MIN_WORDS = 2                # ... and at least this many shared words: the item was about this cause
FIRST_SENTENCE_MAX = 300                # characters quoted from a similar postmortem's root cause analysis
INFORMATIVE_WORDS = 2                   # content words a resolution needs to count as evidence ("It went away": 0)
VAGUE_WORDS = {"went", "away", "itself", "gone", "resolved", "fixed", "recovered", "restored", "self", "somehow",
               "magically", "works", "working", "again", "now", "issue", "problem", "service", "things", "everything",
               "normal", "okay", "fine", "stopped", "happening", "anymore", "just", "its", "own", "automatically",
               "cleared", "it"}
# what the data marks as unknown (a placeholder, never quoted as a fact): "the public postmortem does not
# say what restored service", "not recorded", "n/a", "unknown"...
UNKNOWN_RE = re.compile(r"\bdo(?:es)?(?: not|n't) say\b|\bnot (?:stated|recorded|known|documented|disclosed|given)\b|"
                        r"^\s*(?:n/?a|none|unknown|tbd|\?+|-+)\s*\.?\s*$", re.I)
# words that say nothing about a cause when matching action item titles to a root cause
STOP_WORDS = {"the", "and", "for", "with", "from", "into", "onto", "that", "this", "was", "were", "are", "not",
              "its", "has", "had", "our", "add", "fix", "make", "use", "new", "all", "when", "after", "before"}

# Who detected the incident, read from the earliest Detection event (else the first event), matched
# case-insensitively at the start of a word ("customer" also matches "customers"):
HUMAN_SOURCES = ("customer", "end user", "end-user", "user report", "manual", "support", "helpdesk", "human",
                 "reporter")  # in the event's source: a person or a manual report sent it
HUMAN_REPORT_WORDS = ("reported by", "user report", "users report", "customer report", "customers report",
                      "customer complaint", "customers complain", "users complain", "support ticket",
                      "manual report", "manually report", "reported manually", "noticed by")
# (in its message: it relays a report; not "customers could not pay" nor "a manual operation failed")
ALERT_WORDS = ("alert", "monitor", "prometheus", "datadog", "pagerduty", "opsgenie", "grafana", "cloudwatch",
               "nagios", "zabbix", "sentry", "new relic", "newrelic")  # in source or message: an alert fired
# a recovery step done by hand (a Mitigation/Resolution event, or the recorded resolution): toil that could be
# automated. Matched case-insensitively at word starts; a step that says it was automatic is not one.
MANUAL_STEP_RE = re.compile(
    r"(?<![a-z0-9])(?:manual(?:ly)?|by hand|hand[- ]?(?:edit|patch|ran|run|fix)\w*|physical(?:ly)? access|"
    r"restart(?:ed|ing)?|reboot(?:ed|ing)?|bounc(?:e|ed|ing)|power[- ]?cycl\w*|"
    r"roll(?:ed|ing)? ?back|reverted|reverting|fail(?:ed|ing)? ?over|killed|killing|flush(?:ed|ing)?|purg(?:e|ed|ing)|"
    r"clear(?:ed|ing)? (?:the |a )?(?:cache|queue|disk|logs?|locks?)|"
    r"(?:remov|delet)(?:e|ed|ing) (?:the |a |old |stale )?(?:log|file|lock|temp)\w*|"
    r"re-?ran|re-?run(?:ning)?|re-?start(?:ed|ing)?|scal(?:e|ed|ing) (?:up|out)|drain(?:ed|ing)?)(?![a-z0-9])", re.I)
AUTOMATIC_RE = re.compile(r"(?<![a-z0-9])(?:automatic\w*|auto-?\w+|self-?heal\w*)", re.I)
NOT_IMPACT = {"confidence", "score", "actor"}  # detail keys that are not impact figures


# --- time ------------------------------------------------------------------------------------

def utc(value: Any) -> datetime | None:
    """A datetime (or ISO 8601 text) as an aware UTC datetime; None when it is neither."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str) and value:
        try:
            return utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def iso(value: datetime) -> str:
    value = value.astimezone(timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return value.strftime(fmt)


def duration_text(delta: timedelta, computed: set[str]) -> str:
    """`2 days 3 hours 5 minutes`, with each number recorded as a computed value."""
    total = max(0, int(delta.total_seconds()))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "day"), (hours, "hour"), (minutes, "minute")]
    words = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n]
    if not words:
        words = [f"{seconds} second{'s' if seconds != 1 else ''}"]
    for w in words:
        computed.add(w.split()[0])
    return " ".join(words)


def num(value: float | int) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# --- words and sentences -----------------------------------------------------------------------

def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", (text or "").lower()) if len(w) > 2}


def same_cause(a: str, b: str) -> bool:
    wa, wb = words(a), words(b)
    return bool(wa and wb) and len(wa & wb) / len(wa | wb) >= SAME_ROOT_CAUSE


def about_cause(title: str, cause: str) -> bool:
    """An action item title shares most of its (meaningful) words with the root cause."""
    wt, wc = words(title) - STOP_WORDS, words(cause) - STOP_WORDS
    shared = wt & wc
    return len(shared) >= ITEM_CAUSE_MIN_WORDS and len(shared) / len(wt) >= ITEM_CAUSE_OVERLAP


def mentions(text: str, words_: Iterable[str]) -> bool:
    """One of `words_` starts a word of `text` (case-insensitive)."""
    return any(re.search(r"(?<![a-z0-9])" + re.escape(w), (text or "").lower()) for w in words_)


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters at a space (so no word or identifier is cut in two)."""
    text = " ".join((text or "").split())
    if len(text) <= limit:
        return text
    cut = text[:limit + 1].rsplit(" ", 1)[0] if " " in text[:limit + 1] else ""
    return (cut.rstrip(" ,;:") + " …") if cut else ""


def first_sentence(text: str) -> str:
    """The first sentence of a (markdown) text, headings left out, at most FIRST_SENTENCE_MAX characters."""
    lines = [x.strip() for x in (text or "").splitlines() if x.strip() and not x.strip().startswith("#")]
    flat = re.sub(r"^[-*>\s]+", "", " ".join(lines))
    m = re.match(r"(.+?[.!?])(?=\s|$)", flat)
    return clip(m.group(1) if m else flat, FIRST_SENTENCE_MAX)


def unknown(text: str) -> bool:
    """The value is a placeholder for something the data does not know."""
    return bool(UNKNOWN_RE.search(text or ""))


def known(text: Any) -> str:
    """The text, stripped; empty when it is empty or a placeholder for something unknown."""
    text = str(text or "").strip()
    return "" if unknown(text) else text


def sentence(text: str) -> str:
    """The text as a sentence: ending with `.`, `!`, `?` (or `…`)."""
    text = (text or "").rstrip()
    return text if not text or text[-1] in ".!?…" else text + "."


def informative(resolution: str) -> bool:
    """A resolution that says what was done ("Raised pool size"), not only that it stopped ("It went away")."""
    return len(words(resolution) - STOP_WORDS - VAGUE_WORDS) >= INFORMATIVE_WORDS


def norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", (text or "").lower()))


def repeats(paragraph: str, title: str) -> bool:
    """A paragraph of the description that says nothing the title does not (the same words, or part of them)."""
    p = norm(paragraph)
    return bool(p) and f" {p} " in f" {norm(title)} "


def beyond_title(paragraph: str, title: str) -> str:
    """A paragraph of the description without its leading sentences that only repeat the title."""
    rest = (paragraph or "").strip()
    while m := re.match(r"(.+?[.!?])(?:\s+|$)", rest, re.S):
        if not repeats(m.group(1), title):
            break
        rest = rest[m.end():].strip()
    return "" if repeats(rest, title) else rest


def restates(message: Any, root_cause: str, title: str = "") -> bool:
    """An Analysis event that only repeats the recorded root cause ("Root cause: <the same words>") or the
    title (what happened, not why: an import writes the title-echoing root cause as an event too)."""
    said = re.sub(r"^\s*root cause\s*:?\s*", "", str(message or ""), flags=re.I)
    return (bool(root_cause) and norm(said) == norm(root_cause)) or (bool(title) and repeats(said.rstrip(". "), title))


# --- what an event says ------------------------------------------------------------------------

def human_report(e: Mapping[str, Any]) -> bool:
    return mentions(str(e.get("source") or ""), HUMAN_SOURCES) or mentions(str(e.get("message") or ""),
                                                                            HUMAN_REPORT_WORDS)


def alerting(e: Mapping[str, Any]) -> bool:
    return not human_report(e) and mentions(f"{e.get('source') or ''} {e.get('message') or ''}", ALERT_WORDS)


def manual(text: str) -> bool:
    """A recovery step done by hand (MANUAL_STEP_RE), unless it says it was automatic and not manual."""
    if not MANUAL_STEP_RE.search(text or ""):
        return False
    return not AUTOMATIC_RE.search(text) or bool(re.search(r"(?<![a-z0-9])(?:manual|by hand)", text, re.I))


def figures(details: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Numeric values in event details, with their (dotted) keys."""
    out: list[tuple[str, Any]] = []
    if isinstance(details, Mapping):
        for k, v in details.items():
            key = f"{prefix}{k}"
            if isinstance(v, bool) or k in NOT_IMPACT:
                continue
            if isinstance(v, (int, float)):
                out.append((key, v))
            elif isinstance(v, (Mapping, list)):
                out.extend(figures(v, key + "."))
    elif isinstance(details, list):
        for v in details:
            out.extend(figures(v, prefix))
    return out

"""How a mined pattern reads (pure, no I/O): its words and phrases, its actions and its name.

Actions
-------
What the members record as having fixed or prevented their incident, as whole statements a responder can
act on (never word fragments): each member's recorded resolution and Mitigation event messages (its twins'
too: the same incident recorded twice), and the action items (not WONT_DO) and lessons learned of its
reviewed postmortems (APPROVED or PUBLISHED: a draft's items are not agreed yet). A statement is one
sentence or bullet, cut at ACTION_MAX_CHARS on a word boundary; it must hold at least ACTION_MIN_WORDS
content words, not all of them progress words (`STATUS_WORDS`: "Restoration begins", "Engineering alerted",
"Service restored" say nothing about what was done), and not be a placeholder (`NO_FIX_RE`: "the public
postmortem does not say what restored service", "duplicate of", "n/a"...).
Statements of different members that say the same thing (content-word Jaccard >= SAME_ACTION) are one
action; actions are ordered by how many members record them, then by how central the first member that
does is; at most MAX_ACTIONS.

Names
-----
A phrase a person would write, taken from the members' own sentences of the group's defining text (the
root cause; the fix for RESOLUTION): every sentence and clause of every member is a candidate, shortened at
NAME_MAX_CHARS (at a clause boundary when one falls in the second half, else a word boundary; trailing stop
words dropped; a leading "Label: " dropped), and scored by the group's shared informative phrases it holds
(share of members x IDF over the mined corpus, see `naming.informative`), minus NAME_WHERE_PENALTY per word
that only says who or where (a member's service or category). The best wins; ties: the more central member,
then the shorter text, then the text. A name has at least NAME_MIN_WORDS words of three letters or more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

STOP = frozenset("""a an the and or but if then else of to in on at by for with from into onto over under
as is are was were be been being it its this that these those there here which who whom whose what when
where why how all any both each few more most other some such no nor not only own same so than too very
can could will would should may might must do does did done has have had having i we you he she they
them our your their his her my me us also after before during while about against between through
up down out off again further once s t just now new one two due caused causing led leading resulted
which via per within without across because since until""".split())

NO_FIX_RE = re.compile(r"does not say|\bnot (?:stated|recorded|known|documented)\b|\bduplicate of\b|"
                       r"^\s*(?:n/?a|none|unknown|tbd|-+)\s*\.?\s*$", re.I)
_URL_RE = re.compile(r"https?://\S+|www\.\S+")
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
_SENT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+|\s+[-*\u2022]\s+")
_REAL_WORD_RE = re.compile(r"[A-Za-z]{3,}")
MAX_NGRAM = 3

MAX_ACTIONS = 5
ACTION_MAX_CHARS = 200
ACTION_MIN_WORDS = 2     # content words a statement needs to be an action
# words that only report progress: a statement made of these says nothing about what was done
# ("Restoration begins", "Engineering alerted", "Service restored")
STATUS_WORDS = frozenset("""restoration recovery recovered begins began begin started start starts engineering
engineers alerted paged notified engaged team teams investigation investigating investigated ongoing continues
continued service services restored resolved fixed mitigated issue issues incident incidents monitoring monitored
identified problem progress update updates full fully partial partially complete completed""".split())
SAME_ACTION = 0.5        # content-word Jaccard at which two statements are one action
REVIEWED_POSTMORTEMS = ("APPROVED", "PUBLISHED")
NAME_MAX_CHARS = 80
NAME_MIN_WORDS = 3       # words of 3+ letters
NAME_WHERE_PENALTY = 1.0  # per word that says who or where
NAME_CUT_PENALTY = 1.0    # a candidate cut inside a clause reads unfinished
_CLAUSE_CUT_RE = re.compile(r"[,;:]\s+|\s+-\s+|\s+(?=(?:which|causing|leading to|resulting in|while|and|so|"
                            r"then|but|because|due to|after|before|during|when|where|until|to|in|on|for|with|"
                            r"from|by|of|at|into)\s)")
# a clause starting with one of these leans on the sentence before it ("causing packet loss")
_CONNECTIVES = frozenset("""and but or so then which that this these those it its causing caused leading led lead
resulting resulted while because due after before during when where until to in on for with from by of at into
however also thus hence""".split())
_LEANING = frozenset("and but or so then which that this these those it its causing leading resulting however also "
                     "thus hence".split())  # a sentence starting so continues another one
NAME_CLAUSE_PENALTY = 0.5  # a clause after the sentence's first says less on its own
_LABEL_RE = re.compile(r"^\s*([A-Za-z][\w .&'/-]{0,40}?):\s+(?=\S)")
_PARENS_RE = re.compile(r"\s*\([^()]*\)")


def clean(s: Any) -> str:
    """The text without URLs, whitespace collapsed."""
    return " ".join(_URL_RE.sub(" ", str(s or "")).split())


def tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text.lower())


def content_words(text: str) -> list[str]:
    return [t for t in tokens(text) if t not in STOP and len(t) > 1 and not t.isdigit()]


def real_words(text: str) -> int:
    """Words of three letters or more (what a reader counts as words of a name)."""
    return len(_REAL_WORD_RE.findall(text))


def phrases(text: str) -> set[str]:
    """1..MAX_NGRAM-word phrases of the text, no stop word (or bare number) at either end, not across
    sentence or clause punctuation."""
    out: set[str] = set()
    for clause in re.split(r"[.;:!?,()\[\]\"]+", text.lower()):
        toks = _TOKEN_RE.findall(clause)
        for n in range(1, MAX_NGRAM + 1):
            for i in range(len(toks) - n + 1):
                g = toks[i:i + n]
                if g[0] in STOP or g[-1] in STOP or g[0].isdigit() or g[-1].isdigit() or len(g[0]) < 2 \
                        or len(g[-1]) < 2:
                    continue
                out.add(" ".join(g))
    return out


def sentences(text: str) -> list[str]:
    """Sentences and bullet lines of the text (URLs removed), without their final punctuation."""
    out = []
    for part in _SENT_RE.split(_URL_RE.sub(" ", str(text or ""))):
        s = " ".join(part.split()).strip(" -*\u2022").rstrip(".!?;:, ")
        if s:
            out.append(s)
    return out


def cut(text: str, limit: int, *, clause: bool = True) -> str:
    """At most `limit` characters: cut at a clause boundary (punctuation, a conjunction or a preposition) in the
    second half when there is one, else at a word boundary; trailing stop words and punctuation dropped."""
    return _cut(text, limit, clause=clause)[0]


def _cut(text: str, limit: int, *, clause: bool = True) -> tuple[str, bool]:
    """(`cut`, whether it cut inside a clause)."""
    text = " ".join(text.split())
    inside = False
    if len(text) > limit:
        head = text[:limit + 1]
        bounds = [m.start() for m in _CLAUSE_CUT_RE.finditer(head) if m.start() >= limit // 2] if clause else []
        inside = not bounds
        text = head[:bounds[-1]] if bounds else head[:head.rfind(" ")] if " " in head else head[:limit]
    words = text.rstrip(" ,;:-.").split()
    while len(words) > 1 and words[-1].lower().strip(",;:.'\"") in STOP:
        words.pop()
    return " ".join(words).rstrip(" ,;:-."), inside


# --- actions ---------------------------------------------------------------------------------------------

def statements(text: str) -> list[str]:
    """The actionable statements of a text (module docstring)."""
    out = []
    for s in sentences(text):
        s = cut(s, ACTION_MAX_CHARS, clause=False)
        words = content_words(s)
        if NO_FIX_RE.search(s) or "learning pattern" in s.lower() or len(words) < ACTION_MIN_WORDS \
                or all(w in STATUS_WORDS for w in words):
            continue
        out.append(s[0].upper() + s[1:])
    return out


def _events(inc: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    return [e for e in inc.get("timeline") or [] if isinstance(e, Mapping) and getattr(e.get("type"), "value",
                                                                                        e.get("type")) == kind]


def incident_statements(inc: Mapping[str, Any]) -> list[str]:
    """What the incident records as having fixed it: its resolution, then its Mitigation events."""
    out: list[str] = []
    for text in [inc.get("resolution"), *(e.get("message") for e in _events(inc, "Mitigation"))]:
        out += [s for s in statements(clean(text)) if s not in out]
    return out


def postmortem_statements(pm: Mapping[str, Any]) -> list[str]:
    """A reviewed postmortem's action items (not WONT_DO) and lessons learned; nothing for a draft."""
    if str(pm.get("status") or "") not in REVIEWED_POSTMORTEMS:
        return []
    out: list[str] = []
    for item in pm.get("action_items") or []:
        if isinstance(item, Mapping) and item.get("status") != "WONT_DO":
            out += [s for s in statements(clean(item.get("title"))) if s not in out]
    out += [s for s in statements(str(pm.get("lessons_learned") or "")) if s not in out]
    return out


@dataclass
class _Action:
    text: str
    words: set[str]
    order: int
    members: set[int] = field(default_factory=set)


def shared_actions(per_member: Sequence[Sequence[str]], k: int = MAX_ACTIONS) -> list[str]:
    """Actions from the members' statements, members in order of centrality (module docstring)."""
    groups: list[_Action] = []
    for m, stmts in enumerate(per_member):
        for s in stmts:
            w = set(content_words(s))
            g = next((g for g in groups if len(w & g.words) / len(w | g.words) >= SAME_ACTION), None)
            if g is None:
                g = _Action(s, w, len(groups))
                groups.append(g)
            g.members.add(m)
    groups.sort(key=lambda g: (-len(g.members), g.order))
    return [g.text for g in groups[:k]]


# --- names -----------------------------------------------------------------------------------------------

def _name_candidates(text: str) -> Iterable[tuple[str, bool]]:
    """(candidate, whether it is a later clause of its sentence)."""
    for s in sentences(text)[:3]:
        s = _PARENS_RE.sub("", s)
        if (m := _LABEL_RE.match(s)) and real_words(s[m.end():]) >= NAME_MIN_WORDS:
            s = s[m.end():]  # "Human error: a typo in ..." / "Amazon: ..." -> what happened
        if tokens(s)[:1] and tokens(s)[0] not in _LEANING:
            yield s, False
        for k, c in enumerate(re.split(r"[,;:]\s+|\s+-\s+", s)):
            first = tokens(c)[:1]
            if c and c != s and first and first[0] not in _CONNECTIVES:
                yield c, k > 0


def name_from(texts: Sequence[str], weights: Mapping[str, float], where: set[str]) -> str:
    """The group's name (module docstring): `texts` the members' defining texts, most central first;
    `weights` the shared informative phrases' weights; "" when no candidate has NAME_MIN_WORDS words."""
    best: tuple | None = None
    for rank, text in enumerate(texts):
        for c, later in _name_candidates(text):
            c, inside = _cut(c, NAME_MAX_CHARS)
            if real_words(c) < NAME_MIN_WORDS:
                continue
            toks = tokens(c)
            joined = f" {' '.join(toks)} "
            score = sum(w for p, w in weights.items() if f" {p} " in joined) \
                - NAME_WHERE_PENALTY * sum(1 for t in set(toks) if t in where) - NAME_CUT_PENALTY * inside - NAME_CLAUSE_PENALTY * later
            key = (-round(score, 9), rank, len(c), c)
            if best is None or key < best:
                best = key
    if best is None:
        return ""
    name = best[3]
    return name[0].upper() + name[1:]


def unique_names(names: Sequence[str], extras: Sequence[str]) -> list[str]:
    """The names, each one that occurs more than once told apart by its `extras` entry."""
    seen: dict[str, int] = {}
    for n in names:
        seen[n] = seen.get(n, 0) + 1
    return [f"{n} ({e})" if seen[n] > 1 and e else n for n, e in zip(names, extras)]

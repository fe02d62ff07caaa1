"""What each dataset row says, read once: a clean root cause, the symptom, what restored service,
the timeline lines, a date, and the row it duplicates (two rows citing the same public postmortem
describe one incident). Everything here is taken from the row's own text; nothing is invented."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from app.demo.text import capitalised, plain, sentences

SEVERITY = {"critical": "CRITICAL", "high": "HIGH", "medium": "MEDIUM", "low": "LOW"}
SEVERITY_RANK = {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
# The dataset grades nothing Low. These Medium rows describe a narrow, contained impact (one key on
# one keyboard layout, repeated e-mails, SMS filtering towards one carrier) and are shown as LOW.
LOW_IMPACT = frozenset({"incident_146", "incident_118", "incident_185"})

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_MON = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_TIMELINE = re.compile(rf"^\s*-\s*(?:{_MON}\s+(\d{{1,2}})\b\s*)?(?:(\d{{1,2}}):(\d{{2}})\b)?\s*(.*)$", re.I)
_LEAD = re.compile(rf"^(?:UTC\b\s*)?(?:{_MON}\s+\d{{1,2}}\s*)?:?\s*", re.I)  # "UTC Feb 29: " before the text
_KEYED = re.compile(r"^([A-Z][A-Za-z ]{1,20}):\s*(.*)$")
_SKIP_KEYS = {"source", "category", "severity", "timeline", "regex"}
_CAUSE_KEYS = {"root cause", "config error", "conflict", "trigger", "direct cause"}
_IMPACT_KEYS = {"impact", "outcome"}
FIX = re.compile(r"\b(roll(?:ed)? ?back|rollback|restor\w*|revert\w*|disabl\w*|fix(?:ed|es|ing)?|mitigat\w*|"
                 r"recover\w*|patched|restarted|rolling restart|restart the|renewed|healed|unblock\w*|concluded|"
                 r"failover to|migrating to)\b", re.I)
# what a timeline line between detection and resolution says was done (a mitigation)
ACTION = re.compile(FIX.pattern + r"|\b(halv\w*|raised|paused|scaled|added|revok\w*|reschedul\w*|shut\w*|"
                    r"fail(?:ed)? ?over|drain\w*|blocked)\b", re.I)
_NOT_FIX = re.compile(r"caus|led to|leading to|result(?:ed|ing)? in|\bcrash|read-only|wrong|didn't|not working|"
                      r"tried to|fail(?:ed|ure)? to|inability|bug ?fix|^this\b", re.I)
_EFFECT = re.compile(r"\b(?:(caus(?:ed|ing)|lead(?:ing)? to|led to|result(?:ed|ing) in)|triggering|forcing|"
                     r"preventing|breaking|exhausting|overwhelming|leaving|revealing|exceeding)\s+", re.I)
_IMPACT_WORDS = re.compile(r"outage|unavailab|went down|\bdown\b|errors?|fail|lost|loss|crash|disrupt|degrad|"
                           r"latency|timeout|timed out|read-only|unable", re.I)


@dataclass
class Line:
    """A timeline line of the postmortem: when, and what it says."""

    at: datetime
    text: str


@dataclass
class Fact:
    id: str
    company: str
    category: str
    subcategory: str          # the part after "Category/" ("" when the dataset repeats the category)
    severity: str             # LOW..CRITICAL
    day: datetime             # the incident's date (see `incident_day`)
    date_known: bool          # False: a stand-in date
    detected_at: datetime
    root_cause: str           # complete, plain
    story: list[str]          # the postmortem's sentences, plain
    symptom: str              # what people saw ("" when the text does not say)
    fixes: list[str]          # sentences about what restored service
    lines: list[Line]         # timeline lines with a time of day
    source: str
    duplicate_of: str | None = None   # id of the first row citing the same postmortem
    topic: str = "other"
    components: list[str] = field(default_factory=list)
    public_day: datetime | None = None  # the row's own date once the demo calendar moved `day` (calendar.py)

    @property
    def date_label(self) -> str:
        """The public postmortem's date (the row's own, whatever day the demo shows the incident on)."""
        return (self.public_day or self.day).strftime("%Y-%m-%d") if self.date_known else "date unknown"

    @property
    def public_year(self) -> int:
        return (self.public_day or self.day).year

    def moved(self, delta: timedelta) -> "Fact":
        """The same row with the incident's own times (its day, detection and timeline lines) moved by
        `delta`; the public postmortem's date stays what it was."""
        return replace(self, day=self.day + delta, detected_at=self.detected_at + delta,
                       lines=[Line(x.at + delta, x.text) for x in self.lines],
                       public_day=self.public_day or self.day)

    @property
    def cite(self) -> str:
        return f"{self.company}, {self.date_label}"


def source_key(url: str) -> str:
    """The postmortem a URL points to, whatever archive or scheme it is reached through."""
    url = re.sub(r"^https?://web\.archive\.org/web/\d+/", "", url or "")
    return re.sub(r"^https?://(www\.)?", "", url).split("#")[0].rstrip("/").lower()


def _date_in(text: str) -> datetime | None:
    """The first calendar date the text mentions (`June 8, 2023`, `13 October 2022`, `2016-12-31`)."""
    months = "|".join(_MONTHS)
    patterns = [
        (rf"\b({months})\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", lambda m: (m[3], m[1], m[2])),
        (rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+({months})\s+(\d{{4}})\b", lambda m: (m[3], m[2], m[1])),
        (r"\b(\d{4})-(\d{2})-(\d{2})(?:T|\b)", lambda m: (m[1], m[2], m[3])),
    ]
    found: list[tuple[int, datetime]] = []
    for pattern, parts in patterns:
        for m in re.finditer(pattern, text, re.I):
            year, month, day = parts(m)
            month = int(month) if month.isdigit() else _MONTHS.index(month.lower()) + 1
            try:
                found.append((m.start(), datetime(int(year), month, int(day), tzinfo=timezone.utc)))
            except ValueError:
                continue
    return min(found)[1] if found else None


def incident_day(row: dict[str, Any]) -> tuple[datetime, bool]:
    """The row's date; else the first date its text mentions; else a stable stand-in derived from
    its id (2020-01-01 plus the row number in days). The flag says whether the date is real."""
    try:
        return datetime.fromisoformat(row["date"]).replace(tzinfo=timezone.utc), True
    except (KeyError, TypeError, ValueError):
        pass
    mentioned = _date_in(row.get("postmortem_markdown", ""))
    if mentioned:
        return mentioned, True
    number = int(re.sub(r"\D", "", str(row.get("id", ""))) or 0)
    return datetime(2020, 1, 1, tzinfo=timezone.utc) + timedelta(days=number), False


def _timeline(md: str, day: datetime) -> tuple[list[Line], list[str]]:
    """Bullet lines that carry a time or a date (`- 13:42: WAF rule deployed`, `- Feb 5 00:31: ...`),
    and the other bullet lines as plain text."""
    lines: list[Line] = []
    loose: list[str] = []
    current = day
    for raw in md.splitlines():
        if not raw.lstrip().startswith("-"):
            continue
        m = _TIMELINE.match(raw)
        text = plain(_LEAD.sub("", m[5])) if m else ""
        if not (m and (m[2] or m[3]) and text):
            loose.append(plain(raw.lstrip()[1:]))
            continue
        at = current
        if m[1]:
            month = next(i for i, name in enumerate(_MONTHS, 1) if name.startswith(m[1].lower()[:3]))
            at = day.replace(month=month, day=int(m[2]))
        if m[3]:
            at = at.replace(hour=int(m[3]) % 24, minute=int(m[4]) % 60)
            if lines and at < lines[-1].at:   # past midnight
                at += timedelta(days=1)
        current = at.replace(hour=0, minute=0)
        lines.append(Line(at, capitalised(text)))
    return lines, loose


def _story(md: str) -> tuple[list[str], list[str], list[str]]:
    """(all sentences, cause sentences, impact sentences) of the postmortem text."""
    story: list[str] = []
    causes: list[str] = []
    impacts: list[str] = []
    body = md.split("## Description", 1)[1].split("## Root Cause", 1)[0] if "## Description" in md else md
    for raw in body.splitlines():
        raw = raw.strip()
        if not raw or raw.startswith(("#", "-", "**")):
            continue
        m = _KEYED.match(raw)
        key = m[1].strip().lower() if m else ""
        if key in _SKIP_KEYS:
            continue
        said = sentences(m[2] if m and key else raw)
        story += said
        if key in _CAUSE_KEYS:
            causes += said
        elif key in _IMPACT_KEYS:
            impacts += said
    return story, causes, impacts


def complete(fragment: str, story: list[str]) -> str:
    """The dataset cuts some root causes at a full stop inside a link or a version number
    (`Porting old Careers 2`); the sentence of the text that starts with the fragment is whole."""
    frag = plain(fragment).rstrip(".").removesuffix("...").strip()
    if not frag:
        return ""
    for s in story:
        if s.lower().startswith(frag.lower()[:60]) and len(s) >= len(frag):
            return s
    return frag if frag.endswith((".", "!", "?")) else frag + "."


def _effect(sentence: str) -> str:
    """What the root cause led to: the words after its last "caused"/"leading to" (or from its last
    "preventing"/"exhausting" on); "" when that reads badly ("caused X to Y")."""
    for m in reversed(list(_EFFECT.finditer(sentence))):
        rest = sentence[m.end():].rstrip(".").strip()
        if len(rest) < 12:
            continue
        if m[1] is None:
            return capitalised(f"{m[0].strip()} {rest}")
        if not re.match(r"^(?:\S+\s+){0,6}to\s", rest):
            return capitalised(rest)
    return ""


def read(row: dict[str, Any]) -> Fact:
    """Everything the demo needs from one dataset row."""
    md = row.get("postmortem_markdown") or ""
    day, known = incident_day(row)
    lines, loose = _timeline(md, day)
    story, causes, impacts = _story(md)
    root_cause = complete(row.get("root_cause", ""), story) or (causes[0] if causes else "")
    if len(root_cause) < 30:  # "Human error." / "Fast growth." say little alone
        short = root_cause.rstrip(".").lower()
        longer = next((s for s in story if short in s.lower() and len(s) > len(root_cause) + 5), None)
        if longer:
            root_cause = longer
    story = [s for s in story if s] + [s for s in loose if s]
    symptom = impacts[0] if impacts else _effect(root_cause)
    if not symptom:
        symptom = next((s for s in story if s != root_cause and s not in causes and _IMPACT_WORDS.search(s)), "")
    fixes = [x.text for x in lines[1:-1] if ACTION.search(x.text) and not _NOT_FIX.search(x.text)]
    fixes += [x.text for x in lines[-1:] if len(lines) > 1 and FIX.search(x.text) and not _NOT_FIX.search(x.text)]
    fixes += [s for s in story if s != root_cause and s not in causes and FIX.search(s) and not _NOT_FIX.search(s)
              and s not in fixes]
    detected = lines[0].at if lines else _timestamp(row.get("root_cause_timestamp"), day)
    severity = SEVERITY.get(str(row.get("severity", "")).lower(), "MEDIUM")
    if row.get("id") in LOW_IMPACT:
        severity = "LOW"
    category = plain(row.get("category") or "General")[:100]
    sub = plain(row.get("subcategory") or "").split("/")
    return Fact(id=str(row.get("id", "")), company=plain(row.get("company") or "Unknown"), category=category,
                subcategory=sub[-1][:100] if len(sub) > 1 else "", severity=severity, day=day, date_known=known,
                detected_at=detected, root_cause=root_cause, story=story, symptom=symptom, fixes=fixes, lines=lines,
                source=row.get("source") or "")


def _timestamp(value: Any, day: datetime) -> datetime:
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return day
    at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
    return at if at.date() == day.date() else day


# --- what each incident is about -----------------------------------------------------------

# (key, label, pattern): the first pattern the root cause matches (else the whole text) is the topic.
TOPICS = [
    ("ddos", "DDoS and hostile traffic", r"\bddos\b"),
    ("credentials", "leaked credentials and unauthorised access",
     r"token|credential|password|malware|attacker|hacker|compromis|unauthori[sz]ed|intrusion|\bst[oe]l|steal|"
     r"impersonat|shellshock|leak of users|exposure|malicious"),
    ("time", "time, dates and certificates", r"leap|clock|certificate|expir|date arithmetic|feb 29|time ?zone"),
    ("routing", "routing, BGP and DNS",
     r"\bbgp\b|\broutes?\b|routing|\bdns\b|backbone|peering|router|transit gateway|fiber|packet loss|load balancer"),
    ("replication", "replication and failover",
     r"replica|replication|failover|fail over|\bprimary\b(?!\s+keys?\b)|secondary|quorum|consul|split.brain|\bmaster\b|"
     r"partition"),  # a primary key is the schema's (integer limits), not a primary server's
    ("connections", "connection exhaustion and timeouts", r"connection|\bpool\b|time(?:d)? ?out|reconnect|slots"),
    ("human-error", "human error and manual operations",
     r"human error|typo|accidental|inadvertent|manual|rm -rf|wrong terminal|deleted|deletion|operator"),
    ("schema", "schema changes, locks and integer limits",
     r"migration|schema|index creation|\block|deadlock|vacuum|wraparound|integer|overflow|32-bit|primary key"),
    ("memory", "memory exhaustion", r"memory|\boom|heap"),
    ("capacity", "capacity, load and traffic spikes",
     r"capacity|overload|\bload\b|traffic|spike|surge|throttl|exhaust|autoscal|scal|queue|thundering herd|growth|"
     r"retry|backoff"),
    ("deploys", "deploys, updates and rollbacks",
     r"deploy|rollout|roll(?:ed)? out|release|update|upgrade|rollback|roll back|version|patch|\bpush"),
    ("config", "configuration changes", r"config|policy|setting|flag|\brule\b|regex|regular expression"),
    ("hardware", "power, hardware and data centres", r"power|cooling|data ?cent(?:er|re)|disk|hardware|radar"),
]
TOPIC_LABELS = {key: label for key, label, _ in TOPICS} | {"other": "other failure modes"}
_TOPIC_RES = [(key, re.compile(pattern, re.I)) for key, _, pattern in TOPICS]

_COMPONENTS = [("postgresql", r"postgres"), ("mysql", r"mysql"), ("redis", r"redis"), ("mongodb", r"mongo"),
               ("kubernetes", r"kubernetes|\bk8s\b"), ("consul", r"consul"), ("varnish", r"varnish"),
               ("haproxy", r"haproxy"), ("bgp", r"\bbgp\b"), ("dns", r"\bdns\b"), ("s3", r"\bs3\b"),
               ("ebs", r"\bebs\b"), ("sql-server", r"sql.?server"), ("pgbouncer", r"pgbouncer"),
               ("clickhouse", r"clickhouse"), ("docker", r"docker"), ("jenkins", r"jenkins"), ("npm", r"\bnpm\b"),
               ("elasticsearch", r"elasticsearch|elastic cloud"), ("spanner", r"spanner"), ("kafka", r"kafka"),
               ("memcached", r"memcache"), ("connection-pool", r"connection pool|connection slots"),
               ("load-balancer", r"load balancer|\belb\b"), ("waf", r"\bwaf\b"), ("cdn", r"\bcdn\b"),
               ("tls", r"\btls\b|\bssl\b|certificate")]
_COMPONENT_RES = [(name, re.compile(pattern, re.I)) for name, pattern in _COMPONENTS]


def topic_of(fact: Fact) -> str:
    for text in (fact.root_cause, " ".join(fact.story)):
        for key, pattern in _TOPIC_RES:
            if pattern.search(text):
                return key
    return "other"


def read_all(rows: list[dict[str, Any]]) -> list[Fact]:
    """Facts for all rows, with topics, components and duplicates resolved. A duplicate takes the
    date of the row it duplicates when its own is unknown."""
    facts = [read(r) for r in rows]
    seen: set[str] = set()
    for i, f in enumerate(facts):  # ids key everything below: make them unique
        if not f.id or f.id in seen:
            f.id = f"row_{i + 1:03d}"
        seen.add(f.id)
    first: dict[str, Fact] = {}
    for f in facts:
        text = f"{f.root_cause} {' '.join(f.story)}"
        f.topic = topic_of(f)
        f.components = [name for name, pattern in _COMPONENT_RES if pattern.search(text)]
        key = source_key(f.source)
        if not key:
            continue
        if key in first:
            f.duplicate_of = first[key].id
            if not f.date_known and first[key].date_known:
                shift = first[key].day - f.day
                f.day, f.date_known = first[key].day, True
                f.lines = [Line(x.at + shift, x.text) for x in f.lines]
                f.detected_at = f.lines[0].at if f.lines else first[key].detected_at
        else:
            first[key] = f
    return facts

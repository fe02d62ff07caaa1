"""Where the running local stack listens.

`dev.py run` starts its servers on free ports and writes their URLs (and the API's) to
`.data/stack.json`; it removes the file when it stops. `get_settings()` reads the file for every
server the environment does not name, so `ikl <command>` in another terminal reaches the running
stack. The file records the devserver's pid and that process's start time: a file left behind by
a devserver that is gone (killed, or its pid reused by another process) is stale and ignored.

`IKL_STACK_FILE` names another file (tests; a stack run with `--data-dir`).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

FILE_NAME = "stack.json"
DEFAULT_FILE = Path(__file__).resolve().parent.parent / ".data" / FILE_NAME
# settings field -> the variable that names that server (also read with the IKL_ prefix)
SERVERS = {"mongodb_url": "MONGODB_URL", "opensearch_url": "OPENSEARCH_URL", "broker_url": "BROKER_URL"}


def stack_file() -> Path:
    return Path(os.environ.get("IKL_STACK_FILE") or DEFAULT_FILE)


def env_var(var: str) -> str | None:
    """The environment variable naming this server (`MONGODB_URL` or `IKL_MONGODB_URL`, any case, as
    pydantic-settings reads them), or None."""
    wanted = {var.upper(), f"IKL_{var.upper()}"}
    return next((k for k in os.environ if k.upper() in wanted), None)


def process_identity(pid: int) -> str | None:
    """Something that tells this process from a later one with the same pid (its start time, in clock
    ticks since boot), or None when no such process is alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return "?"  # no /proc: the pid alone
    if fields[0] in ("Z", "X"):  # exited, not yet reaped
        return None
    return fields[19]  # field 22 of proc(5): starttime


def write(path: Path, *, urls: dict[str, str], api_url: str, local: list[str], pids: dict[str, int]) -> None:
    """Publish this process's stack (atomically; readable by its owner only)."""
    doc = {"pid": os.getpid(), "pid_identity": process_identity(os.getpid()),
           "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           **{field: urls[field] for field in SERVERS}, "api_url": api_url, "local": local, "pids": pids}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(tmp, path)


def remove(path: Path) -> None:
    """Remove the file if this process wrote it."""
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def read(path: Path | None = None) -> dict[str, Any] | None:
    """The published stack while the devserver that wrote it is alive; None for a missing, unreadable
    or stale file."""
    try:
        doc = json.loads((path or stack_file()).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("pid"), int):
        return None
    identity = process_identity(doc["pid"])
    if identity is None or (identity != "?" and doc.get("pid_identity") not in (None, "?", identity)):
        return None
    return doc


def settings_overrides() -> dict[str, str]:
    """The running local stack's URL for every server the environment does not name (the environment
    always wins), keyed by variable name as `Settings(...)` takes them; {} when no stack runs."""
    doc = read()
    if doc is None:
        return {}
    return {var: doc[field] for field, var in SERVERS.items()
            if isinstance(doc.get(field), str) and env_var(var) is None}


def redact(url: str) -> str:
    """The URL with any password replaced, fit to print."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
    except ValueError:
        return url

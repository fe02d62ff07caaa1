"""Every domain, imported: what an entry point (app/main.py, app/worker.py, app/cli.py) imports so that
each domain's reactions to incidents (app/incidents/hooks.py), outbox job handlers
(app/indexing/outbox.py `job_handler`) and periodic jobs (app/periodic.py `every`) are registered in that
process, whichever routes or commands it uses. Only entry points import this module."""

from app.articles import embeddings as article_embeddings  # noqa: F401 - job: article-embeddings; backfill
from app.incidents import embeddings as incident_embeddings  # noqa: F401 - job: embeddings; backfill
from app.indexing import outbox  # noqa: F401 - periodic: the outbox sweep with jobs
from app.patterns import runs  # noqa: F401 - periodic: scheduled mining
from app.postmortems import generations  # noqa: F401 - on RESOLVED: automatic generation; periodic: its sweep
from app.postmortems import service as postmortems  # noqa: F401 - periodic: articles of published postmortems
from app.recommendations import calibration  # noqa: F401 - periodic: the confidence calibration refit
from app.recommendations import jobs  # noqa: F401 - on OPENED and LEARNED; job: recommendations
from app.webhooks import delivery as webhook_delivery  # noqa: F401 - periodic: sending webhook deliveries
from app.webhooks import service as webhooks  # noqa: F401 - on RESOLVED: incident.resolved deliveries

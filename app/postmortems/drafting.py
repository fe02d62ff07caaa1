"""Synchronous automated drafting of a postmortem (`generate_automated/`, `generatePostmortemDraft`).

The draft is written by the pure `generator.draft` from the incident and the similar past incidents
the user may see (without them when the search server is down). Sections that are empty or were
auto-generated before are written; a section a person edited (non-empty and not listed in
`auto_generated_sections`) is kept unless `force`. A draft naming a number, timestamp, service or
person absent from the source data is not written: 422 `UNSUPPORTED_FACTS`."""

from __future__ import annotations

import logging
from typing import Any

from opensearchpy.exceptions import OpenSearchException
from pymongo import ReturnDocument

from app.activity.service import record_audit
from app.backends import Backends
from app.errors import Conflict, NotFound, ServiceError
from app.incidents import service as incidents
from app.postmortems import generator
from app.postmortems import service
from app.postmortems.models import REQUIRED_SECTIONS, ActionItem, item_doc
from app.timefmt import utcnow
from app.users.models import Role, User, require_role

log = logging.getLogger(__name__)
SIMILAR_LIMIT = 5


class UnsupportedFacts(ServiceError):
    """The draft names facts the source data does not hold: the request was understood but the
    draft it produced cannot be accepted (422, not a 409: nothing in the postmortem's state conflicts)."""
    status = 422
    code = "UNSUPPORTED_FACTS"


async def _similar(bk: Backends, *, incident: dict, user: User) -> list[dict]:
    try:
        _, hits = await incidents.similar_incidents(bk, user=user, incident_id=incident["_id"], limit=SIMILAR_LIMIT)
    except (OpenSearchException, OSError) as exc:  # the search server is down: draft without them
        log.warning("similar incidents unavailable for drafting: %s", exc)
        return []
    return [doc for doc, _ in hits if doc["_id"] != incident["_id"]]


async def generate_automated(bk: Backends, *, pm_id: str, user: User, force: bool = False) -> dict:
    """Draft the postmortem's sections from its incident (editor). Returns the updated postmortem."""
    require_role(user, Role.EDITOR)
    current = await service.get_postmortem(bk, pm_id=pm_id, user=user)
    if current["status"] in service.CLOSED_STATUSES:
        raise Conflict(f"A {current['status']} postmortem is not drafted again", {"status": current["status"]},
                       code="POSTMORTEM_CLOSED")
    try:
        incident = await incidents.get_incident(bk, incident_id=current["incident"], user=user)
    except NotFound:
        raise NotFound(f"Incident '{current['incident']}' not found", code="INCIDENT_NOT_FOUND") from None
    similar = await _similar(bk, incident=incident, user=user)
    draft = generator.draft(incident, similar=similar)
    unsupported = generator.check(draft, incident, similar)
    if unsupported:
        raise UnsupportedFacts("The draft names facts the incident data does not hold; it was not written",
                               {"unsupported_facts": unsupported[:100]})
    before = set(current.get("auto_generated_sections") or [])
    written = [s for s in draft.auto_generated_sections
               if force or s in before or not service.has_content(current.get(s))]
    kept_auto = [s for s in before if s not in written and service.has_content(current.get(s))
                 and s in REQUIRED_SECTIONS]
    sections = draft.sections()
    changes: dict[str, Any] = {s: sections[s] for s in written}
    if "action_items" in changes:
        changes["action_items"] = [item_doc(ActionItem.model_validate(i)) for i in changes["action_items"]]
    changes.update(is_automated=True, generation_confidence=draft.generation_confidence,
                   auto_generated_sections=[s for s in REQUIRED_SECTIONS if s in written or s in kept_auto],
                   updated_at=utcnow())
    audit = {"sections": written, "kept": [s for s in draft.auto_generated_sections if s not in written],
             "confidence": draft.generation_confidence, "force": force,
             "similar_incidents": [s["_id"] for s in similar]}

    async def op(s):
        updated = await bk.mongo.postmortems.find_one_and_update(
            {"_id": current["_id"], "updated_at": current["updated_at"]}, {"$set": changes}, session=s,
            return_document=ReturnDocument.AFTER)
        if updated is not None:
            await record_audit(bk, action="generate_automated", user=user, subject_type="postmortem",
                               subject_id=current["_id"], changes=audit, session=s)
        return updated

    updated = await bk.transaction(op)
    if updated is None:
        raise Conflict("The postmortem changed while it was being drafted; try again", code="CONCURRENT_UPDATE")
    return updated

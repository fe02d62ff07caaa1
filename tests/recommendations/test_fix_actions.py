"""What counts as what was done about an incident (a SOLUTION's actions): never the paperwork."""

from __future__ import annotations

from app.recommendations.engine import fix_actions


def test_documentation_and_abandoned_action_items_are_not_fixes():
    """Before: "Review the runbook that matched: …" (a drafted Documentation item) was offered as a SOLUTION."""
    incident = {"resolution": "", "timeline": []}
    postmortem = {"action_items": [
        {"title": "Review the runbook that matched: Database runbook", "category": "Documentation", "status": "OPEN"},
        {"title": "Write a runbook for connection exhaustion", "category": "Documentation", "status": "OPEN"},
        {"title": "Cap the pool per pod at 50 connections", "category": "Technical Improvement", "status": "WONT_DO"}]}
    assert fix_actions(incident, postmortem) == []
    postmortem["action_items"].append({"title": "Alert when the pool is 80% used", "category": "Monitoring",
                                       "status": "DONE"})
    assert fix_actions(incident, postmortem) == ["Alert when the pool is 80% used."]
    incident["resolution"] = "Raised the pool size to 200 and restarted the API pods"
    assert fix_actions(incident, postmortem) == ["Raised the pool size to 200 and restarted the API pods.",
                                                 "Alert when the pool is 80% used."]

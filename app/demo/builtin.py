"""The built-in demo rows, used when the public dataset is not there: made-up example companies in
the dataset's format, enough to show every status, severity, article type and classification."""

from __future__ import annotations

BUILT_IN = [
    {"id": "demo_001", "company": "Example Net", "date": "2026-03-02", "severity": "Critical", "category": "Network",
     "subcategory": "Network/BGP", "source": "https://status.example.net/incidents/2026-03-02",
     "root_cause": "A BGP policy change withdrew the routes for the edge network, making every region unreachable.",
     "root_cause_timestamp": "2026-03-02T07:40:00Z",
     "postmortem_markdown": "# Example Net routing outage\nRoot Cause: BGP policy change withdrew the edge routes.\n"
                            "Impact: All regions unreachable from the internet for 35 minutes.\nTimeline:\n"
                            "- 07:40: Edge traffic drops to zero\n- 07:52: Policy change identified as the trigger\n"
                            "- 08:15: Policy change rolled back, routes restored\n"},
    {"id": "demo_002", "company": "Example Pay", "date": "2026-02-20", "severity": "High", "category": "Memory",
     "subcategory": "Memory/Limits", "source": "https://status.example.com/pay/2026-02-20",
     "root_cause": "Memory limit of 512Mi too small for the payment-service under peak load; pods were OOMKilled.",
     "postmortem_markdown": "# OOMKill in payment-service\nTimeline:\n"
                            "- 15:20: OOMKill detected in pod payment-service\n"
                            "- 15:21: Runbook oomkill-standard selected\n"
                            "- 15:30: Memory limit raised to 1Gi, service recovered\n"},
    {"id": "demo_003", "company": "Example Cloud", "date": "2026-02-10", "severity": "Medium",
     "category": "Infrastructure", "subcategory": "Infrastructure/Kubernetes",
     "source": "https://status.example.com/cloud/2026-02-10",
     "root_cause": "A node pool upgrade drained every ingress pod at once, leaving the load balancer without backends.",
     "postmortem_markdown": "# Ingress outage during node upgrade\nTimeline:\n- 10:02: 503 errors from the ingress\n"
                            "- 10:10: All ingress pods found pending after the node pool upgrade\n"
                            "- 10:25: Upgrade paused and ingress pods rescheduled, traffic restored\n"},
    {"id": "demo_004", "company": "Example Shop", "date": "2026-01-15", "severity": "Critical", "category": "Database",
     "subcategory": "Database/Connections", "source": "https://status.example.com/shop/2026-01-15",
     "root_cause": "Connection pool exhausted on the orders database after a deploy doubled the worker count, "
                   "causing connection timeouts in orders-api.",
     "postmortem_markdown": "# Orders database connection timeouts\nImpact: Checkout failed with database connection "
                            "timeouts for 25 minutes.\nTimeline:\n- 09:00: ECONNREFUSED errors from orders-api\n"
                            "- 09:12: Pool exhaustion identified\n- 09:18: Worker count halved, errors drop\n"
                            "- 09:25: Deploy rolled back, errors stopped\n"},
    {"id": "demo_005", "company": "Example Edge", "date": "2025-11-03", "severity": "Medium", "category": "Security",
     "subcategory": "Security/Certificates", "source": "https://status.example.com/edge/2025-11-03",
     "root_cause": "TLS certificate on the edge expired because the renewal job had been failing silently.",
     "postmortem_markdown": "# Expired certificate\nTimeline:\n- 00:01: TLS handshake failures spike\n"
                            "- 00:20: Expired certificate found\n- 00:35: Certificate renewed and deployed\n"},
    {"id": "demo_006", "company": "Example Auth", "date": "2025-09-12", "severity": "High", "category": "Security",
     "subcategory": "Security/Leaked Token", "source": "https://status.example.com/auth/2025-09-12",
     "root_cause": "An API token committed to a public repository was used to read the build cache.",
     "postmortem_markdown": "# Leaked API token\nImpact: Build cache contents exposed for two hours.\nTimeline:\n"
                            "- 13:05: Unusual reads of the build cache alerted\n"
                            "- 13:30: Token traced to a public commit\n"
                            "- 13:40: Token revoked and the cache access restored to the CI role only\n"},
    {"id": "demo_007", "company": "Example Mail", "date": "2025-06-10", "severity": "Low", "category": "Software",
     "subcategory": "Software/Retries", "source": "https://status.example.com/mail/2025-06-10",
     "root_cause": "A retry loop in the newsletter job sent some customers the same e-mail twice.",
     "postmortem_markdown": "# Duplicate newsletters\nTimeline:\n- 06:00: Customers report duplicate newsletters\n"
                            "- 06:40: Newsletter job disabled, retries fixed to be idempotent\n"},
    {"id": "demo_008", "company": "Example Shop", "date": "Unknown", "severity": "Critical", "category": "Database",
     "subcategory": "Database", "source": "https://status.example.com/shop/2026-01-15",
     "root_cause": "Orders database connections ran out after a deploy doubled the worker count",
     "postmortem_markdown": "# Example Shop Incident\n\n## Description\n\nOrders database connections ran out after a "
                            "deploy doubled the worker count. Checkout requests timed out until the deploy was "
                            "rolled back.\n\n## Root Cause\n\nOrders database connections ran out after a deploy "
                            "doubled the worker count\n"},
]

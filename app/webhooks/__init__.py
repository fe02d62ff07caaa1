"""Outbound webhooks: events announced by the domains (events.py), registered targets (service.py), signed
deliveries sent by the workers (delivery.py) to checked addresses (targets.py). docs/domains/webhooks.md."""

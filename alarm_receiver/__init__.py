"""The operator-facing service: the patrol queue, its lifecycle and escalation, users, the live feed."""

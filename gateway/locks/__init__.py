"""Digital locks (issue 10): lock states in, unlocks out only with a valid grant (docs/clients.md)."""

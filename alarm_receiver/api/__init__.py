"""HTTP API under /api/v1: thin routes over alarm_receiver.queue and alarm_receiver.auth."""

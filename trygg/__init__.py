"""Trygg's kernel: settings, store and migration chains, MQTT connection, supervision log, logging, HTTP helpers,
serving, WebRTC set-up, the demo's broker launcher. It imports no service (docs/architecture.md, the layers); the
``trygg`` command is ``trygg_cli``."""

"""Trygg: the command line, settings and the shared plumbing (logging, store, MQTT connection)."""

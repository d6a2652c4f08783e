"""Benchmarks for Trygg: alarm latency end to end, and the MQTT client ceiling. See bench/README.md."""

"""The device-facing service: MQTT intake, device registry, durable alarm store and the forwarder."""

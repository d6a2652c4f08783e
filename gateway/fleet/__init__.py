"""Device fleet supervision: heartbeats, deadlines, technical alarms, remote configuration, installation tests."""

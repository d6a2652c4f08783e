"""Test support shared by ``tests/`` and ``bench/``: a real Mosquitto, the services on free ports, real clients,
and one way to wait (:func:`testing.wait.eventually`). Not part of the wheel."""

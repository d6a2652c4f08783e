"""Protocol adapters: each turns one way devices talk into the same durable intake and supervision.

``mqtt.py`` is Trygg's own device contract (``devices/``, docs/contract.md). An adapter gets the
:class:`gateway.port.GatewayPort` and nothing else of the core: it parses its unit's messages into the contract's
models, submits them (``submit_alarm``/``submit_cancel`` return after the commit, ``report_heartbeat``/
``report_status`` feed supervision), and answers its unit from the outcome: MQTT ``stored``, SCAIP OK, DC-09 ACK.
"""

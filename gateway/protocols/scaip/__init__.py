"""SCAIP (SS 91100, CLC/TS 50134-9): social alarm units over SIP MESSAGE; docs/protocols-scaip.md.

``sip`` (SIP framing and answers), ``mrq`` (the XML requests and answers), ``codes`` (status codes to alarm types),
``handler`` (a request through the gateway's port), ``server`` (UDP and TCP), ``feature`` (all of it as a gateway
feature), ``models``/``registry``/``api`` (the unit registry).
"""

"""The gateway's HTTP API under /api/v1 (technicians, case officers, operators' camera looks).

Users log in at the alarm receiver; the gateway checks their bearer tokens there (gateway/api/deps.py).
"""

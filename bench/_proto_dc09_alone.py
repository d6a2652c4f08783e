"""Trygg's DC-09 receiver as in ``bench/_proto_dc09.py`` but without ``trygg receiver``: the gateway alone on the
cores (an extra row beside the whole chain; the issue's goal is about the whole chain, which is what runs in
service). Its forwarder's POSTs are refused and back off; the ACK path (frame, commit, answer) is unchanged.

    .venv/bin/python -m bench._proto_dc09 --gateway-alone [--alarms 500] [--rate 50] [--units 10]
"""

from __future__ import annotations

from bench._proto_common import Figures, Load
from bench._proto_dc09 import ALONE
from bench._proto_dc09 import run as run_dc09

NAME = ALONE


async def run(load: Load) -> Figures:
    return await run_dc09(load, with_receiver=False)

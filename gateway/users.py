"""Who is asking: a user of the gateway's API, as the receiver (which owns accounts and tokens) vouches for them.

Domain modules take an ``ApiUser`` to check roles and to say who did what in the supervision log; how a request
becomes one is the API's business (``gateway/api/deps.py``).
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ApiUser:
    username: str
    role: str

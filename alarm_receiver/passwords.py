"""Which passwords an account may have: long enough, not common, not guessable (issue 8, point 13).

Length: at least ``password_min_length`` (12) characters, as NIST SP 800-63B and OWASP advise for passwords a
person chooses. Common passwords: the list of 30,000 most common passwords (and the English words, names and
film/TV words) that ships in the ``zxcvbn`` package (the Python port of Dropbox's estimator), and zxcvbn's own
estimate (score 3 of 4: "safely unguessable" for an offline attack on a slow hash), with the username and
"trygg" as words an attacker would try first. A refusal is a code with parameters (the console translates it).
"""

from __future__ import annotations

from typing import Any

from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

MIN_SCORE = 3
_COMMON = frozenset(FREQUENCY_LISTS["passwords"])
# zxcvbn's cost grows with length; a longer password is not weaker, so only its start is scored.
_SCORED_CHARS = 100


class WeakPassword(ValueError):
    """A password refused, with a code and parameters the console translates."""

    def __init__(self, code: str, detail: str, params: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.params = params or {}


def check_password(password: str, username: str, *, min_length: int = 12) -> None:
    """Raise :class:`WeakPassword` unless ``password`` may be ``username``'s password."""
    if len(password) < min_length:
        raise WeakPassword(
            "password.too_short", f"a password needs at least {min_length} characters", {"min_length": min_length}
        )
    lowered = password.lower()
    if lowered in _COMMON:
        raise WeakPassword("password.common", "this password is on a list of common passwords")
    if username and len(username) >= 3 and username.lower() in lowered:
        raise WeakPassword("password.contains_username", "a password must not contain the username")
    result = zxcvbn(password[:_SCORED_CHARS], user_inputs=[username, "trygg", "larm", "alarm"])
    if int(result["score"]) < MIN_SCORE:
        raise WeakPassword(
            "password.guessable",
            "this password is easy to guess (a common word, name, date or pattern); use more unrelated words",
            {"score": int(result["score"])},
        )

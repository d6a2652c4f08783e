"""The body of every refused HTTP request (4xx, and 5xx the services answer themselves), in both services.

``detail`` is English text for logs and people reading the API; ``code`` is a dotted, stable code the console
translates (``alarm_receiver/console/static/messages.js``); ``params`` are the values its text refers to. For 422
(request validation) ``code`` is ``request.invalid``, ``detail`` the problems in English ("note: String should
have at most 2000 characters") and ``params`` the first problem's field and constraint, with all of them under
``params.errors`` (never the input). ``trygg/errors.py`` builds it.
"""

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    detail: str
    code: str
    params: dict[str, Any] = Field(default_factory=dict)

"""The body of every refused HTTP request (4xx, and 5xx the services answer themselves), in both services.

``detail`` is English text for logs and people reading the API; ``code`` is a dotted, stable code the console
translates (``alarm_receiver/console/static/i18n.js``); ``params`` are the values its text refers to. For 422
(request validation) ``detail`` is FastAPI's list of problems, as before, with ``code`` ``request.invalid``.
"""

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    detail: str | list[Any]
    code: str
    params: dict[str, Any] = Field(default_factory=dict)

"""Who may call the machine-facing endpoints: the OpenAI-compatible /v1 routes and MCP over HTTP.

Browsers log in to the web chat through gradio's login page; programs cannot, so these routes
check the `Authorization` header instead. When PAPERCHAT_AUTH or PAPERCHAT_API_TOKEN is set,
a request needs one of:

- `Authorization: Bearer <PAPERCHAT_API_TOKEN>` (what an `openai` client sends for api_key=...),
- `Authorization: Bearer user:password` with the PAPERCHAT_AUTH credentials,
- `Authorization: Basic base64(user:password)` with the same credentials.

Nothing here imports a web framework, so both servers share it and it is unit-tested alone.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from ui.handlers import parse_auth

REALM = "paperchat"


class ApiCredentials:
    """The credentials the API routes accept, read once from the settings."""

    def __init__(self, settings: Any) -> None:
        token = settings.api_token.get_secret_value() if settings.api_token else ""
        self.token = token or None
        self.login = parse_auth(settings.auth.get_secret_value() if settings.auth else None)

    @property
    def required(self) -> bool:
        return self.token is not None or self.login is not None

    def allows(self, authorization: str | None) -> bool:
        """True when no credentials are configured or the header carries accepted ones."""
        if not self.required:
            return True
        scheme, _, value = (authorization or "").strip().partition(" ")
        value = value.strip()
        if not value:
            return False
        scheme = scheme.lower()
        if scheme == "bearer":
            if self.token is not None and _same(value, self.token):
                return True
            return self.login is not None and _same(value, ":".join(self.login))
        if scheme == "basic" and self.login is not None:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return _same(decoded, ":".join(self.login))
        return False

    def refusal_message(self, authorization: str | None) -> str:
        what = "These credentials are not accepted" if authorization else "Credentials are needed"
        ways = []
        if self.token is not None:
            ways.append("`Authorization: Bearer $PAPERCHAT_API_TOKEN` (the openai client's api_key)")
        if self.login is not None:
            ways.append("the PAPERCHAT_AUTH credentials as `Bearer user:password` or HTTP Basic")
        return f"{what}: send {' or '.join(ways)}."


def _same(given: str, expected: str) -> bool:
    # Constant-time comparison: response time must not reveal how much of a secret matched.
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))

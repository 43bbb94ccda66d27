"""Cross-origin access for browsers (CORS): which pages of other origins may call the API.

Off unless origins are listed. Then Starlette's CORS middleware answers preflights and adds the
headers to every answer, event streams and errors included; a refused preflight is answered, like
every error of the API, as JSON with a stable code. Settings that would be unsafe (any origin with
credentials: every site could act as the signed-in user) or could never match (an origin with a
path or a trailing slash) are refused when the handler is made.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response

METHODS = ("GET", "POST", "DELETE")
HEADERS = ("Authorization", "Content-Type", "Last-Event-ID")  # what the API reads
REFUSED = "CORS_REFUSED"
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s]+")


def cors_middleware(origins: Sequence[str], credentials: bool, headers: Sequence[str]) -> list[Middleware]:
    """The middleware that lets these origins in (none: no middleware, browsers let no other origin
    read the API); `credentials`: their pages may send cookies; `headers`: request headers they may
    send besides `HEADERS`."""
    if isinstance(origins, str):
        raise TypeError(f"cors_origins must be a list of origins, not the string {origins!r}")
    if not origins:
        if credentials or headers:
            raise ValueError("cors_credentials and cors_headers need cors_origins: no origin is allowed yet")
        return []
    allowed = []
    for origin in origins:
        if origin == "*":
            if credentials:  # Starlette would then echo any origin back with credentials
                raise ValueError("cors_origins '*' cannot go with cors_credentials=True: list the origins")
        elif not _ORIGIN.fullmatch(origin.lower()):
            raise ValueError(
                f"cors_origins: {origin!r} is not an origin: scheme://host[:port], with no path or trailing slash"
            )
        allowed.append(origin.lower())  # browsers send scheme and host in lower case
    return [
        Middleware(
            _Cors,
            allow_origins=allowed,
            allow_methods=METHODS,
            allow_headers=[*HEADERS, *headers],
            allow_credentials=credentials,
            expose_headers=["Retry-After"],  # how long a 503 asks the client to wait
        )
    ]


class _Cors(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        """Starlette's answer; a refusal (400, plain text) as the API's JSON error."""
        answer = super().preflight_response(request_headers)
        if answer.status_code < 400:
            return answer
        kept = {
            name: value
            for name, value in answer.headers.items()
            if name.startswith("access-control-") or name == "vary"
        }
        body = {"error": bytes(answer.body).decode(), "code": REFUSED}
        return JSONResponse(body, status_code=answer.status_code, headers=kept)

"""`AuthGuard`: ASGI middleware that lets through only what `DurablyAuth.authenticate` accepts.

The dashboard's backend serves its pages, its static files, its websocket (every click and every
live update travels on it) and the API. Guarding the API alone would leave the pages and, worse, the
websocket's events open, so the guard wraps the whole backend (as Reflex's last `api_transformer`,
outermost) and asks `authenticate` about every HTTP request and websocket handshake:

- it returns the caller (anything but None): the request goes on;
- it returns None: 401;
- it raises `starlette.exceptions.HTTPException`: that status, detail and headers, so a hook can ask
  the browser for credentials (`HTTPException(401, headers={"WWW-Authenticate": 'Basic realm="x"'})`);
- it raises anything else: the error is logged with its traceback and the answer is a plain 401,
  which says nothing of the error (its text could carry secrets or internals).

A refused websocket is closed before it is accepted (the client sees its handshake fail, 403).
`authenticate` gets a Starlette `Request` either way (for a websocket, its handshake's: URL, headers,
cookies, client), without a body to read.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..server import DurablyAuth

logger = logging.getLogger("durably_reflex.dashboard")

UNAUTHORIZED = "Unauthorized"
WEBSOCKET_POLICY_VIOLATION = 1008


class AuthGuard:
    """Wraps `app`: HTTP requests and websocket handshakes pass only when `auth.authenticate` accepts
    them; other scopes (lifespan) pass untouched."""

    def __init__(self, app: ASGIApp, auth: DurablyAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal = await self.refusal(_request_of(scope))
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": WEBSOCKET_POLICY_VIOLATION})
        else:
            await refusal(scope, receive, send)

    async def refusal(self, request: Request) -> Response | None:
        """None when `authenticate` accepts the request, else the answer that refuses it."""
        try:
            caller = self.auth.authenticate(request)
            if inspect.isawaitable(caller):
                caller = await caller
        except HTTPException as error:
            return PlainTextResponse(str(error.detail), status_code=error.status_code, headers=error.headers)
        except Exception:
            logger.exception("dashboard: authenticate raised on %s %s; answering 401", request.method, request.url.path)
            return PlainTextResponse(UNAUTHORIZED, status_code=401)
        if caller is None:
            return PlainTextResponse(UNAUTHORIZED, status_code=401)
        return None


def guard(auth: DurablyAuth) -> Callable[[ASGIApp], ASGIApp]:
    """`app.api_transformer` entry: the transform that wraps Reflex's backend in an `AuthGuard`."""

    def transform(app: ASGIApp) -> ASGIApp:
        return AuthGuard(app, auth)

    return transform


def _request_of(scope: Scope) -> Request:
    """The request `authenticate` judges: for a websocket, its handshake (an HTTP GET: same URL,
    headers, cookies and client), so hooks see one type. No `receive`: the body is not theirs to read."""
    if scope["type"] == "websocket":
        scope = {**scope, "type": "http", "method": "GET"}
    return Request(scope)

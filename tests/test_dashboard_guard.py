"""The dashboard's `AuthGuard` (durably_reflex.dashboard.guard) in front of a small real ASGI app:
a page and a websocket, as Reflex's backend serves them, driven by Starlette's TestClient."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from durably_reflex.dashboard.guard import AuthGuard
from durably_reflex.server import DurablyAuth

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="durably"'}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def authenticate_basic(request: Request) -> str:
    """A hook as the README shows it: admin/s3cret, else ask the browser for credentials."""
    if request.headers.get("authorization") == basic("admin", "s3cret")["Authorization"]:
        return "admin"
    raise HTTPException(401, headers=BASIC_CHALLENGE)


async def page(request: Request) -> PlainTextResponse:
    return PlainTextResponse("the runs page")


async def events(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


def guarded(authenticate: Any) -> TestClient:
    backend = Starlette(routes=[Route("/", page), WebSocketRoute("/_event", events)])
    return TestClient(AuthGuard(backend, DurablyAuth(authenticate=authenticate)))


def test_a_page_request_without_credentials_is_answered_401_with_the_hooks_challenge() -> None:
    response = guarded(authenticate_basic).get("/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="durably"'
    assert "runs page" not in response.text


def test_a_page_request_the_hook_accepts_reaches_the_app() -> None:
    response = guarded(authenticate_basic).get("/", headers=basic("admin", "s3cret"))
    assert response.status_code == 200
    assert response.text == "the runs page"


def test_a_hook_returning_none_refuses_with_a_plain_401() -> None:
    response = guarded(lambda request: None).get("/")
    assert (response.status_code, response.text) == (401, "Unauthorized")


def test_an_async_hook_is_awaited() -> None:
    async def authenticate(request: Request) -> str | None:
        return "someone" if request.cookies.get("session") == "ok" else None

    client = guarded(authenticate)
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"Cookie": "session=ok"}).status_code == 200


def test_an_error_in_the_hook_is_logged_and_answered_with_a_generic_401(caplog: pytest.LogCaptureFixture) -> None:
    def authenticate(request: Request) -> str:
        raise RuntimeError("cannot reach ldap://10.0.0.7 with password hunter2")

    with caplog.at_level(logging.ERROR, logger="durably_reflex.dashboard"):
        response = guarded(authenticate).get("/")
    assert (response.status_code, response.text) == (401, "Unauthorized")
    assert "hunter2" not in response.text and "www-authenticate" not in response.headers
    [record] = [r for r in caplog.records if r.name == "durably_reflex.dashboard"]
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])


def test_a_websocket_without_credentials_is_closed_before_it_opens() -> None:
    with pytest.raises(WebSocketDisconnect) as refused, guarded(authenticate_basic).websocket_connect("/_event"):
        pass
    assert refused.value.code == 1008


def test_a_websocket_the_hook_accepts_opens_and_the_hook_sees_its_handshake() -> None:
    seen: list[tuple[str, str]] = []

    def authenticate(request: Request) -> str:
        seen.append((request.method, request.url.path))
        return authenticate_basic(request)

    with guarded(authenticate).websocket_connect("/_event", headers=basic("admin", "s3cret")) as websocket:
        assert websocket.receive_text() == "hello"
    assert seen == [("GET", "/_event")]

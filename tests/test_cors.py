"""Cross-origin access (`create_durably_handler(cors_origins=...)`) against a REAL server (uvicorn on
127.0.0.1): off by default; when origins are listed, preflights are answered and every answer to
them carries the CORS headers, event streams and errors included; unsafe or malformed settings are
refused when the handler is made. (tests/browser/test_cors_browser.py drives it from Chromium.)
"""

from __future__ import annotations

from typing import Any

import pytest
import reflex as rx

from durably_reflex import create_durably, mount_durably
from durably_reflex.server import create_durably_handler
from tests.server_fixtures import (
    LiveServer,
    Serve,
    assert_json,
    migrated_template,  # noqa: F401  (fixture)
    serve_fixture,  # noqa: F401  (the `serve` fixture)
)

APP = "http://app.example:3000"
OTHER = "https://evil.example"


def preflight(server: LiveServer, path: str, method: str, origin: str, headers: str | None = None) -> Any:
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        request_headers["Access-Control-Request-Headers"] = headers
    return server.client.options(path, headers=request_headers)


async def test_without_cors_origins_no_answer_lets_another_origin_read_it(serve: Serve) -> None:
    server = await serve(start_worker=False)
    answer = await server.client.get("/runs", headers={"Origin": APP})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
    asked = await preflight(server, "/trigger", "POST", APP, "content-type")
    assert asked.status_code == 204 and asked.headers["allow"] == "OPTIONS, POST"  # our plain OPTIONS answer
    assert not any(name.startswith("access-control-") for name in asked.headers)


async def test_a_listed_origins_preflight_is_answered_for_every_method_and_header_the_api_takes(serve: Serve) -> None:
    server = await serve(start_worker=False, cors_origins=[APP])
    for path, method in (("/trigger", "POST"), ("/retry", "POST"), ("/run", "DELETE"), ("/runs", "GET")):
        asked = await preflight(server, path, method, APP, "content-type, authorization, last-event-id")
        assert asked.status_code == 200, (path, asked.text)
        assert asked.headers["access-control-allow-origin"] == APP
        assert {"GET", "POST", "DELETE"} <= set(asked.headers["access-control-allow-methods"].split(", "))
        allowed = {name.lower() for name in asked.headers["access-control-allow-headers"].split(", ")}
        assert {"content-type", "authorization", "last-event-id"} <= allowed
        assert "access-control-allow-credentials" not in asked.headers


async def test_another_origins_preflight_is_refused(serve: Serve) -> None:
    server = await serve(start_worker=False, cors_origins=[APP])
    asked = await preflight(server, "/trigger", "POST", OTHER, "content-type")
    assert assert_json(asked, 400) == {"error": "Disallowed CORS origin", "code": "CORS_REFUSED"}
    assert "access-control-allow-origin" not in asked.headers
    answer = await server.client.get("/runs", headers={"Origin": OTHER})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


async def test_answers_to_a_listed_origin_carry_the_headers_errors_included(serve: Serve) -> None:
    server = await serve(start_worker=False, cors_origins=[APP])
    origin = {"Origin": APP}
    triggered = await server.client.post("/trigger", json={"jobName": "no-input"}, headers=origin)
    missing = await server.client.get("/run", params={"runId": "nope"}, headers=origin)
    for answer, status in ((triggered, 200), (missing, 404)):
        assert_json(answer, status)
        assert answer.headers["access-control-allow-origin"] == APP
        assert "Origin" in answer.headers["vary"]
        assert answer.headers["access-control-expose-headers"] == "Retry-After"  # a 503's wait, readable


@pytest.mark.parametrize("path", ["/subscribe", "/runs/subscribe"])
async def test_event_streams_carry_the_headers(serve: Serve, path: str) -> None:
    server = await serve(start_worker=False, cors_origins=[APP])
    run_id = await server.trigger("no-input")
    stream = await server.stream(
        path, params={"runId": run_id} if path == "/subscribe" else None, headers={"Origin": APP}
    )
    assert stream.response.headers["content-type"] == "text/event-stream"
    assert stream.response.headers["access-control-allow-origin"] == APP
    if path == "/subscribe":
        assert (await stream.next()).type == "run:snapshot"  # type: ignore[union-attr]


async def test_cors_credentials_lets_a_listed_origin_send_cookies(serve: Serve) -> None:
    server = await serve(start_worker=False, cors_origins=[APP], cors_credentials=True, cors_headers=["X-User"])
    asked = await preflight(server, "/trigger", "POST", APP, "content-type, x-user")
    assert asked.status_code == 200 and asked.headers["access-control-allow-credentials"] == "true"
    assert asked.headers["access-control-allow-origin"] == APP
    answer = await server.client.get("/runs", headers={"Origin": APP, "Cookie": "session=1"})
    assert answer.headers["access-control-allow-origin"] == APP
    assert answer.headers["access-control-allow-credentials"] == "true"


async def test_a_wildcard_lets_any_origin_read_without_credentials(serve: Serve) -> None:
    server = await serve(start_worker=False, cors_origins=["*"])
    answer = await server.client.get("/runs", headers={"Origin": OTHER, "Cookie": "session=1"})
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers


async def test_origins_are_matched_as_browsers_send_them(serve: Serve) -> None:
    server = await serve(start_worker=False, cors_origins=["HTTP://App.Example:3000"])
    answer = await server.client.get("/runs", headers={"Origin": APP})
    assert answer.headers["access-control-allow-origin"] == APP


@pytest.mark.parametrize(
    ("options", "error", "fragment"),
    [
        ({"cors_origins": ["*"], "cors_credentials": True}, ValueError, "list the origins"),
        ({"cors_origins": ["http://app.example:3000/"]}, ValueError, "no path or trailing slash"),
        ({"cors_origins": ["app.example"]}, ValueError, "is not an origin"),
        ({"cors_origins": "http://app.example"}, TypeError, "a list of origins"),
        ({"cors_credentials": True}, ValueError, "need cors_origins"),
        ({"cors_headers": ["X-User"]}, ValueError, "need cors_origins"),
    ],
)
def test_unsafe_or_malformed_cors_settings_are_refused(options: dict[str, Any], error: type, fragment: str) -> None:
    durably = create_durably("sqlite:///:memory:")
    with pytest.raises(error, match=fragment):
        create_durably_handler(durably, **options)


def test_mount_durably_leaves_cors_to_reflex() -> None:
    """Reflex wraps the API in its own CORS middleware, which answers preflights first: options of
    ours would do nothing, so they are refused with where to set it instead."""
    with pytest.raises(ValueError, match="cors_allowed_origins in rxconfig.py"):
        mount_durably(rx.App(), create_durably("sqlite:///:memory:"), cors_origins=[APP])

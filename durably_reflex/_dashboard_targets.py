"""The engine and the auth a dashboard serves, named "module:attribute" (`$DURABLY_APP`,
`$DURABLY_AUTH`, or the `dashboard` command's arguments), and the remote API it may show instead
(`--api URL`, with the headers sent to it: `--api-header`, `$DURABLY_API_HEADERS`).

Shared by the command, which checks them before it starts Reflex (bad input is one line and exit 2,
not a traceback in a build log a minute later), and by the packaged app module, which loads them
again inside the Reflex process. Neither needs Reflex, so this module does not import it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

from ._cli import UsageError, import_target
from ._engine import Durably
from .server import DurablyAuth


def load_durably(spec: str) -> Durably:
    """The `Durably` at `spec` ("module:attribute", the module imported with the current directory
    first on sys.path). The dashboard reads its jobs when the app is compiled, so the engine itself
    is needed, not a factory."""
    value = import_target(spec)
    if not isinstance(value, Durably):
        raise UsageError(
            f'"{spec}" is {_describe(value)}, not a Durably: point at the object create_durably(...) returns'
        )
    return value


def load_auth(spec: str) -> DurablyAuth:
    """The `DurablyAuth` at `spec` ("module:attribute")."""
    value = import_target(spec)
    if not isinstance(value, DurablyAuth):
        raise UsageError(f'"{spec}" is {_describe(value)}, not a DurablyAuth (from durably_reflex.server)')
    return value


def _describe(value: object) -> str:
    kind = type(value).__name__
    return f"an {kind}" if kind[:1].lower() in "aeiou" else f"a {kind}"


# -- a remote API (`--api`) ------------------------------------------------------------------------
# An HTTP header name (RFC 9110 token characters).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
HEADERS_ENV = "DURABLY_API_HEADERS"  # "Name: value" lines sent with every request to the remote API
# Headers of the browser's websocket handshake that describe that connection, not its user: passed
# on, they would break the API's requests.
_CONNECTION_HEADERS = frozenset(
    {
        "host", "connection", "upgrade", "content-length", "content-type", "transfer-encoding", "te", "trailer",
        "keep-alive", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
        "sec-websocket-protocol", "accept-encoding",
    }
)  # fmt: skip


def check_api_url(url: str) -> str:
    """The base URL of a remote durably API (its base path included: `http://host:8000/api/durably`),
    without a trailing slash; UsageError for anything but an http(s) URL with a host and no query."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--api expects the API's http(s) URL with its base path, such as http://127.0.0.1:8000/api/durably, got {url!r}"
        )
    if parts.query or parts.fragment:
        raise UsageError(f"--api takes no query or fragment (the dashboard adds its own), got {url!r}")
    try:
        parts.port  # noqa: B018  (reading it checks it)
    except ValueError:
        raise UsageError(f"--api has a port that is not a number: {url!r}") from None
    return url.strip().rstrip("/")


def check_header_name(name: str) -> str:
    """A header of the browser's connection to pass on to the API (`--forward-header`): a valid
    name, and not one that describes the connection itself (host, upgrade, ...)."""
    if not _HEADER_NAME.fullmatch(name):
        raise UsageError(f"--forward-header takes a header name, such as cookie; got {name!r}")
    if name.lower() in _CONNECTION_HEADERS:
        raise UsageError(f"--forward-header {name}: that header describes the browser's connection, not its user")
    return name


def parse_header(text: str) -> tuple[str, str]:
    """`Name: value` (as curl's -H takes it) as (name, value); UsageError for a malformed one, whose
    value is never repeated in the message (it is most likely a secret)."""
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    usage = 'an API header is "Name: value", such as "Authorization: Bearer <token>"'
    if not colon:
        raise UsageError(f"{usage}; one given has no colon")
    if not _HEADER_NAME.fullmatch(name):
        raise UsageError(f"{usage}; one given is named {name!r}")
    if any(char in value for char in "\r\n\0"):
        raise UsageError(f"the value of the API header {name!r} holds a line break or NUL")
    return name, value


def parse_headers(lines: Iterable[str]) -> dict[str, str]:
    """Headers from "Name: value" lines (blank lines skipped); a later line replaces an earlier one
    of the same name, whatever its case."""
    headers: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            continue
        name, value = parse_header(line)
        for known in [known for known in headers if known.lower() == name.lower()]:
            del headers[known]
        headers[name] = value
    return headers


def headers_text(headers: Mapping[str, str]) -> str:
    """`headers` as the lines `parse_headers` reads back (the form of `$DURABLY_API_HEADERS`)."""
    return "\n".join(f"{name}: {value}" for name, value in headers.items())


def shown_url(url: str) -> str:
    """`url` without the user and password it may carry (`http://user:secret@host/...`), to show."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))

"""`DurablyState`: what every hook state shares: the API client, and whose credentials it sends.

A hook state reads the durably API over HTTP from the Reflex backend, on behalf of one browser tab.
By default every tab sends the same requests (the class's `client`, with its fixed headers). An app
with its own login scopes each user's page by sending that user's credentials along:

- `forward_headers=("cookie",)` passes the named headers of the tab's own connection to the
  backend (its websocket handshake: the browser's cookies and, behind HTTP authentication, its
  `authorization`) on to the API, where `DurablyAuth.authenticate` sees the same user as the page;
- `request_headers=lambda state: {...}` computes headers from the state (a token the app's login
  stored in it, say);
- or a subclass overrides `session_headers`.

Forward credentials only to an API you trust with them: the one `mount_durably` mounted on the same
backend, or your own jobs server.

Subclasses may override the methods named in `EXTENSION_POINTS` (each documented where it is
defined). They stay plain Python methods: Reflex turns every other public function of a state class
into an event the browser can send, and these are not meant to be called from a page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import reflex as rx

from .._client import DurablyClient

# Methods a subclass may override; kept out of the events a browser may send (see the docstring),
# like the helpers the states give subclasses to call.
EXTENSION_POINTS: frozenset[str] = frozenset({"session_headers", "on_status_change", "fetch_runs", "to_row"})
_PLAIN_METHODS = EXTENSION_POINTS | {"api", "typed_runs"}

HeadersFunction = Callable[[Any], Mapping[str, str]]


class DurablyState(rx.State, mixin=True):
    """The base of the hook states: `client`, `forward_headers`, `request_headers` and `api()`."""

    client: ClassVar[DurablyClient]
    # Request headers of the tab's connection (lowercase names) to send to the API as they are.
    forward_headers: ClassVar[tuple[str, ...]] = ()
    # A function of the state returning more headers for the API, as a staticmethod (a plain
    # function here would become an event handler of the state); the factories wrap it.
    request_headers: ClassVar[HeadersFunction | None] = None

    def __init_subclass__(cls, mixin: bool = False, **kwargs: Any) -> None:
        _mark_plain_methods(cls)
        super().__init_subclass__(mixin=mixin, **kwargs)

    def session_headers(self) -> dict[str, str]:
        """The headers this tab's API requests carry (called with the state locked): the
        `forward_headers` of the tab's connection, then what `request_headers` computes. Override
        it to take credentials from elsewhere."""
        raw = self.router.headers.raw_headers
        headers = {name: raw[name] for name in self.forward_headers if raw.get(name)}
        request_headers = self.__class__.request_headers  # the class's plain function, not bound to self
        if request_headers is not None:
            headers.update(request_headers(self))
        return headers

    def api(self) -> DurablyClient:
        """The client for this tab: `client` sending `session_headers()`. Call it with the state
        locked (in an event handler, or inside `async with self` in a background one)."""
        # `self.__class__`, not `type(self)`: in a background event `self` is Reflex's StateProxy,
        # which forwards `__class__` to the state but is a type of its own.
        return self.__class__.client.with_headers(self.session_headers())


def _mark_plain_methods(cls: type) -> None:
    """Mark the class's own extension points and helpers with Reflex's sign for "not an event"."""
    for name in _PLAIN_METHODS & cls.__dict__.keys():
        cls.__dict__[name].__override_base_method__ = True


_mark_plain_methods(DurablyState)

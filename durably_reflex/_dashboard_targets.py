"""The engine and the auth a dashboard serves, named "module:attribute" (`$DURABLY_APP`,
`$DURABLY_AUTH`, or the `dashboard` command's arguments).

Shared by the command, which checks them before it starts Reflex (bad input is one line and exit 2,
not a traceback in a build log a minute later), and by the packaged app module, which loads them
again inside the Reflex process. Neither needs Reflex, so this module does not import it.
"""

from __future__ import annotations

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

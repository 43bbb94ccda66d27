"""The durably-reflex dashboard (a Reflex app; ``app_name="app"`` in rxconfig.py)."""

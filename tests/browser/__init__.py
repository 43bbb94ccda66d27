"""End-to-end tests in a real browser against real Reflex apps (see conftest.py)."""

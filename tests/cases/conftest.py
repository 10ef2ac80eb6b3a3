"""Case-work tests use the shared fixtures of tests/conftest.py (``login`` signs staff in by API)."""

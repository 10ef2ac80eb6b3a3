"""Code the tests and the benchmarks share, imported by its full name (``from tests.support.staff import``).

- ``stack``: the real processes under test: the PostgreSQL cluster, free ports, migrated databases, the live
  server's address; ``notification``: Redis, the SMTP server and its inbox, webhooks; ``product``: the
  whole product as separate processes (API, worker, beat), for the fault and scale-out tests and benchmarks;
  ``proxy``: nginx in front; ``worker``: waiting on the outbox.
- ``forms``: what a client sends: form tokens (``csrf_token``), the report fields, a standard report body.
- ``staff``: accounts, the clock and TOTP codes; ``custody``: key custody and its adversaries;
  ``evidence``: reports with files, and the canary check that nothing sealed is stored in clear.
- ``authz``: the authorisation matrix built from the routes; ``page_catalogue``: every GET page, for
  axe-core in tests/browser; ``browser``: Chromium pages and their checks.
- ``backup``, ``migration``, ``retention``, ``statistics``, ``fuzz``: the worlds of those test folders.
- ``parallel``: how ``make test`` spreads the modules over pytest-xdist workers.
"""

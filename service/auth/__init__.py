"""Staff accounts, sign-in, split-key sessions and the authenticated subject.

For feature code (case work): depend on ``deps.StaffDep`` (reads) or ``deps.StaffWriteDep`` (JSON calls that
change state; checks X-CSRF-Token), take the ``subject.Subject`` it yields into every query, and open an
organisation's key with ``subject.organisation_key(session, organisation_id)`` (404 when not a member).
Account changes go through ``runtime.accounts`` (``service.AccountService``).
"""

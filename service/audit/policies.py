"""Policy changes are governance decisions: each policy file set the service starts with is audited.

Operators change routing rules, the taxonomy, retention and statistics parameters by editing files under
``policies/`` and restarting. Whoever can write those files can redirect reports, so a change must leave a
trace that the operator cannot quietly remove: on every start the service compares the SHA-256 of each
policy file with the last recorded set and, if anything differs, appends a ``policy.changed`` event naming
the files that changed and their new digests. ``rueckhalt audit verify`` then covers policy history too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy.orm import Session

from service.audit import repository
from service.audit.service import MAX_DETAIL_ITEMS, AuditLog

ACTION = "policy.changed"
# Data files of the policy folder; tests/ holds examples for `rueckhalt policy test`, not policy.
_SUFFIXES = (".yaml", ".yml", ".csv")


def policy_digests(policies_dir: Path) -> dict[str, str]:
    """File name -> SHA-256 (hex) of every policy file directly in the folder, in name order."""
    files = sorted(p for p in policies_dir.iterdir() if p.is_file() and p.suffix in _SUFFIXES)
    if len(files) + 1 > MAX_DETAIL_ITEMS:
        raise ValueError("too many policy files to record in one audit event")
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def record_policy_state(session: Session, audit: AuditLog, policies_dir: Path) -> list[str]:
    """Audit the policy files if they differ from the last recorded set; returns the changed names.

    The caller commits: the start-up (of the service, of a worker, of a purge) is the transaction, once,
    before any request or task."""
    digests = policy_digests(policies_dir)
    last = repository.latest_with_action(session, ACTION)
    before = {k: v for k, v in (last.details if last else {}).items() if k != "changed"}
    changed = sorted(name for name in digests.keys() | before.keys() if digests.get(name) != before.get(name))
    if not changed:
        return []
    audit.append(
        session,
        actor_kind="system",
        actor_id=None,
        action=ACTION,
        object_type="policies",
        details={**digests, "changed": ",".join(changed)[:128]},
    )
    return changed

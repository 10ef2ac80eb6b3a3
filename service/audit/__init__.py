"""The hash-chained audit log: who decrypted, downloaded, assigned, exported or changed what, and when.

``AuditLog.append`` writes a row inside the caller's transaction; ``verify`` walks the chain and names the
first row that was altered, removed, moved or forged, and (given a checkpoint kept offline) a cut tail.
The command line (``service.audit.cli.audit_app``) is not imported here: it pulls in the whole runtime.
"""

from service.audit.chain import key_id
from service.audit.checkpoint import Checkpoint, find_checkpoints
from service.audit.service import AuditKeyMismatch, AuditLog, chain_held
from service.audit.verification import Problem, VerifyResult, verify

__all__ = [
    "AuditKeyMismatch",
    "AuditLog",
    "Checkpoint",
    "Problem",
    "VerifyResult",
    "chain_held",
    "find_checkpoints",
    "key_id",
    "verify",
]

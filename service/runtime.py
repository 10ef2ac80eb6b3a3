"""Everything a process needs, built once from the settings and kept on ``app.state``.

Nothing here is state that another process needs: counters live in Redis or the database, sessions in the
database, blobs on shared disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.audit import AuditLog
from service.auth.gate import ARGON2_GATE, Argon2Gate
from service.auth.service import AccountService
from service.cases.links import CaseLinks
from service.cases.merge import CaseMerger
from service.cases.panels import CaseDocuments, CasePanel
from service.cases.service import CaseService
from service.config import Secrets, Settings, load_secrets
from service.config_checks import check_production
from service.db import make_engine, make_sessionmaker
from service.dossier.documents import LetterPanel, StaffDocuments
from service.evidence.blobs import BlobStore
from service.knowledge.selfcheck_store import SelfcheckStore
from service.knowledge.service import KnowledgeService
from service.knowledge.support import SupportDirectory
from service.matching.panel import MatchingPanel
from service.matching.service import MatchingService, matching_limit
from service.ratelimit.clients import ClientResolver
from service.ratelimit.service import (
    Counter,
    FailoverCounter,
    Limit,
    RateLimiter,
    RedisCounter,
    SqlCounter,
)
from service.reports.service import IntakeService
from service.reports.submissions import SubmissionTokens
from service.retention import RetentionService, load_retention
from service.routing import RoutingPolicy, load_policy
from service.taxonomy import Districts, Taxonomy, load_districts, load_taxonomy


@dataclass
class Runtime:
    settings: Settings
    secrets: Secrets
    engine: Engine
    sessions: sessionmaker[Session]
    taxonomy: Taxonomy
    districts: Districts
    policy: RoutingPolicy
    blobs: BlobStore
    limiter: RateLimiter
    clients: ClientResolver
    intake: IntakeService
    accounts: AccountService
    audit: AuditLog
    cases: CaseService
    # The same event and merge proposals: two cases the subject holds both of.
    case_links: CaseLinks
    merges: CaseMerger
    retention: RetentionService
    knowledge: KnowledgeService
    support: SupportDirectory
    submissions: SubmissionTokens
    matching: MatchingService
    # Self-checks kept under a municipality's code (found under the lookup pepper, sealed under the code).
    selfchecks: SelfcheckStore
    # What the features built on cases show on the case page and generate from it (service/cases/panels.py).
    case_panels: tuple[CasePanel, ...]
    case_documents: CaseDocuments
    # Process-wide by default; a test may give one runtime a gate of its own.
    argon2_gate: Argon2Gate = ARGON2_GATE

    def dispose(self) -> None:
        self.engine.dispose()


def prepare_data_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def build_runtime(settings: Settings) -> Runtime:
    check_production(settings)
    prepare_data_dir(settings.data_dir)
    secrets = load_secrets(settings)
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    counter: Counter = SqlCounter(sessions)
    if settings.redis_url:
        counter = FailoverCounter(RedisCounter(settings.redis_url), counter)
    taxonomy = load_taxonomy(settings.policies_dir)
    districts = load_districts(settings.policies_dir)
    policy = load_policy(settings.policies_dir)
    # Loaded at start like the routing policy, so a process never runs on a retention file it refuses.
    retention = load_retention(settings.policies_dir)
    audit = AuditLog.of(secrets)
    blobs = BlobStore(settings.blob_dir)
    limiter = RateLimiter(counter, secrets.ratelimit_key)
    # The only holder of the matching key (docs/matching.md).
    matching = MatchingService(
        secrets.matching_key, audit, limiter, matching_limit(settings.matching_limit_per_hour)
    )
    intake = IntakeService(
        taxonomy,
        districts,
        policy,
        secrets.lookup_pepper,
        secrets.statistics_key,
        secrets.notification_key,
        audit,
        matching,
        previous_lookup_peppers=secrets.previous_of("lookup_pepper"),
    )
    cases = CaseService(taxonomy, audit)
    return Runtime(
        settings=settings,
        secrets=secrets,
        engine=engine,
        sessions=sessions,
        taxonomy=taxonomy,
        districts=districts,
        policy=policy,
        blobs=blobs,
        limiter=limiter,
        clients=ClientResolver(settings.trusted_networks),
        intake=intake,
        accounts=AccountService(
            secrets.session_key,
            key_peppers=secrets.key_peppers,
            audit=audit,
            previous_session_keys=secrets.previous_of("session_key"),
        ),
        audit=audit,
        cases=cases,
        case_links=CaseLinks(cases, secrets.statistics_key),
        merges=CaseMerger(
            audit, secrets.lookup_pepper, secrets.statistics_key, secrets.notification_key, blobs
        ),
        retention=RetentionService(
            retention, audit, blobs, notice_days=settings.purge_notice_days, forget_tokens=matching.forget
        ),
        knowledge=KnowledgeService(taxonomy, audit),
        support=SupportDirectory([land.code for land in districts.lands], audit),
        # Under the session key with purposes of their own (as the CSRF tokens): never in the database.
        submissions=SubmissionTokens(secrets.session_key, previous=secrets.previous_of("session_key")),
        matching=matching,
        selfchecks=SelfcheckStore(secrets.lookup_pepper),
        case_panels=(MatchingPanel(matching), LetterPanel(taxonomy)),
        case_documents=StaffDocuments(taxonomy, audit, blobs),
    )


def intake_limit(settings: Settings) -> Limit:
    return Limit("intake", settings.intake_limit_per_hour, 3600)


def receipt_limit(settings: Settings) -> Limit:
    return Limit("receipt", settings.receipt_limit_per_hour, 3600)


def selfcheck_code_limit(settings: Settings) -> Limit:
    """Opening, saving under and deleting by a self-check code: as many per client and hour as receipt
    look-ups, in a window of its own (a municipality's stock-taking does not use up a reporter's)."""
    return Limit("selfcheck-code", settings.receipt_limit_per_hour, 3600)


def login_client_limit(settings: Settings) -> Limit:
    return Limit("login-client", settings.login_limit_per_hour, 3600)

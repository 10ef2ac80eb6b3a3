"""Application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from service import health
from service.assets import AssetFiles
from service.audit.policies import record_policy_state
from service.auth import endpoints as auth_endpoints
from service.auth import pages as auth_pages
from service.auth.deps import install_staff_error_handlers
from service.cases import endpoints as case_endpoints
from service.cases import form_pages as case_form_pages
from service.cases import pages as case_pages
from service.config import PROJECT_ROOT, Settings, get_settings
from service.db import POOL_TIMEOUT_SECONDS, make_async_engine, make_async_sessionmaker
from service.error_handlers import install_error_handlers
from service.hardening import NO_TELEMETRY, HardeningMiddleware, install_log_filter
from service.knowledge import pages as knowledge_pages
from service.knowledge import print_pages, selfcheck_pages, support_pages
from service.legal import pages as legal_pages
from service.legal_links import legal_links
from service.observability import listener, logs
from service.observability.collectors import DatabaseCollector
from service.observability.listener import instrument_pool
from service.organisations import endpoints as organisation_endpoints
from service.organisations import pages as organisation_pages
from service.outbox.dispatch import Dispatcher, broker_publisher
from service.ratelimit.service import AsyncRedisCounter
from service.reports import case_pages as reporter_case_pages
from service.reports import download_pages as reporter_download_pages
from service.reports import endpoints as report_endpoints
from service.reports import pages as report_pages
from service.reports.on_loop import LoopStatements
from service.runtime import Runtime, build_runtime
from service.statistics.dashboard import endpoints as dashboard_endpoints
from service.statistics.dashboard import pages as dashboard_pages
from service.statistics.public import endpoints as public_statistics_endpoints
from service.statistics.public import opendata_pages
from service.statistics.public import pages as statistics_pages
from service.web import BodyLimits, Pages, make_templates

DESCRIPTION = """Rückhalt: encrypted incident reports of hostility toward local officials, routed on the
server to support organisations. The free-text account of what happened is the field `description`."""


def create_app(
    settings: Settings | None = None,
    runtime: Runtime | None = None,
    *,
    publish_after_commit: bool | None = None,
    freeze_after_start: bool = False,
) -> FastAPI:
    """The application; ``publish_after_commit`` (a served process's default as its settings say, off for a
    test's runtime unless asked for) publishes a report's delivery tasks on ``settings``' broker right after
    its commit; ``freeze_after_start`` (a served process: ``app_factory``) moves what the start-up built out
    of the garbage collector's sight (``_freeze_heap``)."""
    settings = settings or (runtime.settings if runtime else get_settings())
    if publish_after_commit is None:
        publish_after_commit = runtime is None and settings.publish_after_commit
    logging.basicConfig(level=logging.INFO, format=logs.TEXT_FORMAT)
    install_log_filter()
    logs.apply_format(settings)
    built = runtime or build_runtime(settings)
    instrument_pool(built.engine, "threads")
    if runtime is None:
        # A served process records which policy files it routes by (tests pass a runtime of their own).
        with built.sessions() as session:
            record_policy_state(session, built.audit, settings.policies_dir)
            session.commit()  # the start-up is the transaction, before any request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Made here, in the loop that serves: asyncio connections must not outlive or leave their loop.
        async_engine = make_async_engine(built.settings.resolved_database_url)
        if async_engine is not None:
            instrument_pool(async_engine.sync_engine, "loop")
        # Started here, after uvicorn's fork: the listener's thread belongs to the process that serves.
        metrics_listener = listener.start(settings, listener.Role.api, DatabaseCollector(built))
        app.state.async_engine = async_engine
        app.state.async_sessions = make_async_sessionmaker(async_engine) if async_engine else None
        app.state.loop_statements = LoopStatements(async_engine) if async_engine else None
        redis_url = built.settings.redis_url
        app.state.async_redis = AsyncRedisCounter(redis_url) if redis_url else None
        dispatcher = None
        if publish_after_commit:
            # One thread per process (made here, after uvicorn's fork), publishing on the workers' broker.
            publish, publish_many = broker_publisher(settings)
            dispatcher = Dispatcher(built.sessions, publish, publish_many=publish_many)
            dispatcher.start()
            built.intake.dispatcher = dispatcher
        if freeze_after_start:
            _freeze_heap()
        try:
            yield
        finally:
            if app.state.loop_statements is not None:
                # Reports in flight are stored (or given up) and handed to the dispatcher before it closes.
                await app.state.loop_statements.group.drained(at_most=POOL_TIMEOUT_SECONDS)
            app.state.loop_statements = None
            if dispatcher is not None:
                built.intake.dispatcher = None
                await run_in_threadpool(dispatcher.close)
            app.state.async_engine = None
            app.state.async_sessions = None
            if app.state.async_redis is not None:
                await app.state.async_redis.close()
                app.state.async_redis = None
            app.state.health.close()
            if async_engine is not None:
                await async_engine.dispose()
            if metrics_listener is not None:
                await run_in_threadpool(metrics_listener.close)
            listener.process_ended()
            if runtime is None:
                built.dispose()

    app = FastAPI(
        title="Rückhalt",
        version="1",
        description=DESCRIPTION,
        docs_url=None,  # Swagger UI loads third-party scripts; /openapi.json is the contract
        redoc_url=None,
        lifespan=lifespan,
        telemetry=NO_TELEMETRY,
    )
    app.state.runtime = built
    # Until the lifespan starts (and without one, as in a test client used outside ``with``), the thread
    # pool serves every request.
    app.state.async_engine = None
    app.state.async_sessions = None
    app.state.loop_statements = None
    app.state.async_redis = None
    app.state.health = health.HealthProbe(built)
    app.state.pages = Pages(
        make_templates(legal_links(settings)), built.secrets.session_key, settings.behind_tls
    )
    install_error_handlers(app, lambda: app.state.pages)
    install_staff_error_handlers(app)
    app.include_router(health.router)
    app.include_router(report_endpoints.router)
    app.include_router(report_pages.router)
    app.include_router(reporter_case_pages.router)
    app.include_router(reporter_download_pages.router)
    app.include_router(auth_endpoints.router)
    app.include_router(auth_pages.router)
    app.include_router(case_endpoints.router)
    app.include_router(case_pages.router)
    app.include_router(case_form_pages.router)
    app.include_router(organisation_endpoints.router)
    app.include_router(organisation_pages.router)
    app.include_router(dashboard_endpoints.router)
    app.include_router(public_statistics_endpoints.router)
    app.include_router(statistics_pages.router)
    app.include_router(opendata_pages.router)
    # Before the articles: /wissen/unterstuetzung is a page of its own, not the article of that slug.
    app.include_router(support_pages.router)
    app.include_router(print_pages.router)
    # Before the articles: /wissen/sicherheitsplan and /wissen/selbstcheck/... are not article slugs.
    app.include_router(selfcheck_pages.router)
    app.include_router(knowledge_pages.router)
    app.include_router(dashboard_pages.router)
    app.include_router(legal_pages.router)
    app.mount("/static", AssetFiles(directory=PROJECT_ROOT / "service" / "static"), name="static")
    limits = BodyLimits(
        json=settings.max_json_body_bytes,
        form=settings.max_form_body_bytes,
        long_form=settings.max_long_form_body_bytes,
        upload=settings.max_upload_body_bytes,
    )
    app.state.body_limits = limits
    app.add_middleware(HardeningMiddleware, behind_tls=settings.behind_tls, max_body_bytes=limits.largest)
    return app


def _freeze_heap() -> None:
    """Move every object the start-up made (modules, mappers, templates, the taxonomy and policy: about
    200,000) to the collector's permanent generation.

    CPython's full collection walks every tracked object, and under load it runs every few seconds: objects
    of requests in flight survive the young collections and count towards the next full one. Measured
    with two api workers under wrk (2026-12-07), each full collection stopped its worker for 105 to 160 ms,
    the tail of every request behind it; with the start-up frozen, 8 to 30 ms. Nothing of a request
    exists yet (this runs before the first). A garbage cycle made later is still found; one that takes in
    an object frozen here (a cache replaced later) is not, bounded by the start-up heap."""
    gc.collect()
    gc.freeze()


def app_factory() -> FastAPI:
    """Entry point for uvicorn --factory: a served process."""
    return create_app(freeze_after_start=True)

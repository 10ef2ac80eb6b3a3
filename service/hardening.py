"""The hardening every response gets: security headers (the CSP and the rest), the largest body any route
takes, a content-free access log, and log filters that keep request content out of every log line.

Nothing here may log or echo request content: the access log names the route template, never the path with
its parameters or the client address; an error is logged by its type.
"""

from __future__ import annotations

import logging
import time

from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig

from service.errors import PayloadTooLarge
from service.observability import metrics
from service.web import ASGIApp, Message, Receive, Scope, Send, is_page

access_log = logging.getLogger("rueckhalt.access")

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


# FastAPI's own OpenTelemetry (0.16x) is off, whatever the environment says. By default it records spans
# with the path and query of each request as soon as any global tracer provider is set, and with
# FASTAPI_OTEL_AUTO_CONFIGURE=true it exports them, its metrics and its error logs (which carry the body of a
# request that failed validation: a report) to the OTLP endpoint named in OTEL_* variables. A variable set
# for another service in the operator's environment must not open a channel for request content; the
# service's own metrics (service/observability) count without content. Off, it also costs no check of the
# global providers on each request.
NO_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


def security_headers(behind_tls: bool, path: str) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-resource-policy", b"same-origin"),
        (
            b"permissions-policy",
            b"camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
        ),
    ]
    if not path.startswith("/static/"):
        # Reports and case pages must not stay in a shared browser's cache.
        headers.append((b"cache-control", b"no-store"))
    if behind_tls:
        headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))
    return headers


class HardeningMiddleware:
    """Security headers on every response, a content-free access log, and the largest body any route takes
    (a backstop: each route has its own, smaller limit, see ``BodyKind``)."""

    def __init__(self, app: ASGIApp, *, behind_tls: bool, max_body_bytes: int) -> None:
        self.app = app
        self.behind_tls = behind_tls
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = dict(scope.get("headers") or [])
        # Whatever the request claims to be: the content type is the client's to choose, the limit is not.
        limit = self.max_body_bytes
        extra = security_headers(self.behind_tls, path)
        started = time.perf_counter()
        status_holder = {"status": 0}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                existing = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in extra if name not in existing
                ]
            await send(message)

        declared = headers.get(b"content-length")
        too_large = False
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                too_large = True
            if too_large and not is_page(path):
                response = JSONResponse({"detail": PayloadTooLarge.public_message}, status_code=413)
                await response(scope, receive, send_wrapper)
                self._log(scope, 413, started)
                return

        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            if too_large:
                # A page's form: its first read of the body raises, and the error handlers answer with the
                # page in the reader's language (a reporter on a phone must not get a line of JSON).
                raise PayloadTooLarge()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge()
            return message

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            self._log(scope, status_holder["status"] or 500, started)

    @staticmethod
    def _log(scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or metrics.UNMATCHED_ROUTE
        seconds = time.perf_counter() - started
        method: str = scope.get("method", "-")
        access_log.info("%s %s %d %.1fms", method, template, status, seconds * 1000)
        metrics.record_request(
            scope["path"], method, template, status, seconds, scope.get(metrics.ERROR_SCOPE_KEY)
        )


class ContentFreeLogFilter(logging.Filter):
    """Replaces tracebacks by the exception's type: a traceback's locals and messages may quote content.

    Starlette re-raises unhandled errors to the server so that it logs them; uvicorn would print the whole
    traceback, including exception messages such as a database error that lists the statement's values.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None:
            record.msg = f"{record.getMessage()} [{record.exc_info[0].__name__}]"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


class DriverLogFilter(logging.Filter):
    """psycopg logs an error it ignores (say, while leaving pipeline mode after another failure) with the
    server's message, whose DETAIL line may quote a stored value: only the types of its arguments stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            arguments = record.args if isinstance(record.args, tuple) else (record.args,)
            record.msg = f"{record.msg} [{', '.join(type(argument).__name__ for argument in arguments)}]"
            record.args = None
        return True


def install_log_filter() -> None:
    logging.getLogger("psycopg").addFilter(DriverLogFilter())
    content_free = ContentFreeLogFilter()
    for name in ("uvicorn.error", "uvicorn", "fastapi", "starlette", "rueckhalt"):
        logging.getLogger(name).addFilter(content_free)
    for handler in logging.getLogger().handlers:
        handler.addFilter(content_free)

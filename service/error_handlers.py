"""The error handlers of the application: a domain error, a refused request, a lost database or an
unexpected failure answered as a page in the reader's language or as JSON for the API.

Nothing here may echo request content: errors name fields, never values; an unexpected error is logged by
its type only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.db import database_unavailable
from service.errors import DatabaseUnavailable, DomainError, ErrorDetail
from service.i18n import Translator
from service.observability import metrics
from service.web import Pages, request_lang, wants_html


def _sanitised(errors: Any) -> list[ErrorDetail]:
    """Pydantic's errors without ``input`` and ``ctx``: those would echo what the client sent."""
    cleaned: list[ErrorDetail] = []
    for error in errors:
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "json_invalid":
            message = "invalid JSON"
        loc: list[str | int] = list(error.get("loc", []))
        cleaned.append({"loc": loc, "type": str(error.get("type", "invalid")), "msg": message})
    return cleaned


def install_error_handlers(app: FastAPI, pages: Callable[[], Pages]) -> None:
    def error_page(request: Request, status: int, key: str) -> Response:
        t = Translator(request_lang(request))
        return pages().render(
            request,
            "error.html",
            status=status,
            status_code=status,
            title=t(f"{key}.title"),
            message=t(f"{key}.message"),
        )

    async def domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        # For the intake's metrics: which refusal it was, where the status alone does not tell (two 503s).
        request.scope[metrics.ERROR_SCOPE_KEY] = type(exc).__name__
        response: Response
        if wants_html(request):
            if exc.message_key.startswith("error."):
                key = exc.message_key
            else:
                # A form refused as a whole (no field to show the problem at): not a fault of ours.
                key = "error.invalid" if exc.status_code == 422 else "error.server"
            response = error_page(request, exc.status_code, key)
        else:
            body: dict[str, Any] = {"detail": exc.detail or exc.public_message}
            if exc.detail:
                body["message"] = exc.public_message
            response = JSONResponse(body, status_code=exc.status_code)
        if exc.retry_after_seconds is not None:
            response.headers["retry-after"] = str(exc.retry_after_seconds)
        return response

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse(
            {"detail": _sanitised(exc.errors()), "message": "Some fields are not valid."}, status_code=422
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if wants_html(request) and exc.status_code in (404, 405):
            return error_page(request, exc.status_code, "error.not_found")
        return JSONResponse(
            {"detail": "Not found." if exc.status_code == 404 else "Request refused."},
            status_code=exc.status_code,
        )

    async def database_error(request: Request, exc: Exception) -> Response:
        if not database_unavailable(exc):
            return await unexpected(request, exc)
        # The type only (a driver's message may quote the statement's values); a warning, not an error:
        # it is the database's state, and it ends when the database is back.
        logging.getLogger("rueckhalt.error").warning(
            "database unavailable (%s) on %s", type(exc).__name__, request.method
        )
        return await domain_error(request, DatabaseUnavailable())

    async def unexpected(request: Request, exc: Exception) -> Response:
        # The exception type only: its message or traceback may quote content.
        logging.getLogger("rueckhalt.error").error("unhandled %s on %s", type(exc).__name__, request.method)
        if wants_html(request):
            return error_page(request, 500, "error.server")
        return JSONResponse({"detail": "Internal error. Nothing was stored."}, status_code=500)

    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    # Errors of the connection rather than of a statement: DBAPIError covers a lost connection that the
    # driver reports under another class; database_error sends everything else on to ``unexpected``.
    app.add_exception_handler(sa_exc.DBAPIError, database_error)
    app.add_exception_handler(sa_exc.TimeoutError, database_error)
    app.add_exception_handler(Exception, unexpected)

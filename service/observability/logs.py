"""Log lines as text (the default) or as JSON objects, one a line (``RUECKHALT_LOG_FORMAT=json``).

The format changes nothing of what is logged: the content-free filters (``service.web``) run first, and the
JSON formatter itself never writes a traceback or an exception's message, only its type, should a record
reach it unfiltered.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from service.config import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# The loggers that uvicorn and Celery give handlers of their own (they do not all propagate to the root).
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False)


def apply_format(settings: Settings) -> None:
    """Give every handler of the root logger and of the servers' loggers the configured format."""
    if settings.log_format != "json":
        return
    formatter = JsonFormatter()
    for logger in (logging.getLogger(), *(logging.getLogger(name) for name in _SERVER_LOGGERS)):
        for handler in logger.handlers:
            handler.setFormatter(formatter)

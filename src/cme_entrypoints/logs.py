"""Log records as one JSON object per line, in the fields Cloud Logging understands."""

import logging
import logging.config
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

_CLOUD_SEVERITY = {"WARNING": "WARNING", "CRITICAL": "CRITICAL"}

# Set by the HTTP middleware for the duration of a request, so that every line logged while
# serving it, from any module, carries its id.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "severity": _CLOUD_SEVERITY.get(record.levelname, record.levelname),
            "message": record.getMessage(),
            "logger": record.name,
        }
        current_request = getattr(record, "request_id", None) or request_id.get()
        if current_request is not None:
            entry["request_id"] = current_request
        subject = getattr(record, "subject", None)
        if subject is not None:
            entry["subject"] = subject
        http = getattr(record, "http", None)
        if http is not None:
            entry["httpRequest"] = {
                "requestMethod": http["method"],
                "requestUrl": http["path"],
                "status": http["status"],
                "latency": f"{http['latency_seconds']:.6f}s",
            }
            entry["route"] = http["route"]
        trace = getattr(record, "trace_header", None)
        if trace:
            entry["logging.googleapis.com/trace"] = trace.split("/", 1)[0]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class ConsoleFormatter(logging.Formatter):
    """For people at a terminal: one short line, with the request id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        current_request = getattr(record, "request_id", None) or request_id.get()
        return f"{line} [{current_request}]" if current_request else line


class AccessLog:
    """The one line per request, written straight to stdout in the configured format.

    The logging module's record, handler lock and formatter cost more than a whole /health
    request (measured in bench/); the fields are those of JsonFormatter all the same.
    """

    _logger = logging.getLogger("cme.access")

    def __init__(self, fmt: str) -> None:
        self._json = fmt == "json"

    @property
    def enabled(self) -> bool:
        return self._logger.isEnabledFor(logging.INFO)

    def write(
        self,
        method: str,
        path: str,
        route: str,
        status: int,
        seconds: float,
        request: str,
        subject: str | None,
        trace: str | None,
    ) -> None:
        now = time.time()
        if not self._json:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
            line = f"{stamp},{int(now % 1 * 1000):03d} INFO    cme.access {method} {path} {status}"
            _emit(f"{line} [{request}]\n".encode())
            return
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(now, UTC).isoformat(),
            "severity": "INFO",
            "message": f"{method} {path} {status}",
            "logger": "cme.access",
            "request_id": request,
            "httpRequest": {
                "requestMethod": method,
                "requestUrl": path,
                "status": status,
                "latency": f"{seconds:.6f}s",
            },
            "route": route,
        }
        if subject is not None:
            entry["subject"] = subject
        if trace:
            entry["logging.googleapis.com/trace"] = trace.split("/", 1)[0]
        _emit(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))


def _emit(line: bytes) -> None:
    # Looked up on every call: tests and embedders may swap sys.stdout.
    stream = sys.stdout
    stream.flush()  # keep the order of lines the logging handler wrote
    stream.buffer.write(line)
    stream.buffer.flush()


def configure(level: str, fmt: str) -> dict[str, Any]:
    """Configure logging for this process and return the dict for uvicorn's own workers."""
    formatter = {"()": JsonFormatter} if fmt == "json" else {"()": ConsoleFormatter}
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            # Our own access log replaces uvicorn's, which would log every request twice.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
        },
    }
    logging.config.dictConfig(config)
    return config

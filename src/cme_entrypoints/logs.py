"""Log records as one JSON object per line, in the fields Cloud Logging understands."""

import logging
import logging.config
import re
import sys
import time
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import unquote_plus

import orjson

from cme_entrypoints.trace_context import RequestContext

_CLOUD_SEVERITY = {"WARNING": "WARNING", "CRITICAL": "CRITICAL"}
TRACE: Final = "logging.googleapis.com/trace"
SPAN_ID: Final = "logging.googleapis.com/spanId"
TRACE_SAMPLED: Final = "logging.googleapis.com/trace_sampled"

# Set by the HTTP middleware for the duration of a request, so that every line logged while
# serving it, from any module, carries its request id and trace.
request_context: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)

# C0 and C1 control characters, DEL and the Unicode line breaks: a path or message holding
# them could otherwise start what looks like a log line of its own.
_ESCAPES: Final = {
    c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
}


# A query parameter named like a credential has its value logged as REDACTED: a client that
# puts a key or token in a URL must not have it copied into the logs.
_SECRET_NAME: Final = re.compile(
    r"key|token|secret|passw|pwd|auth|sig|credential|session|jwt", re.I
)
REDACTED: Final = "REDACTED"


def redacted_query(query: bytes) -> str:
    """The query string as sent ("?a=1&b=2"), credential-looking values REDACTED; "" for none."""
    if not query:
        return ""
    text = query.decode("latin-1")
    # Most queries name no credential: one search of the whole string, unless a name may be
    # percent- or plus-encoded (%74oken).
    if "%" not in text and "+" not in text and _SECRET_NAME.search(text) is None:
        return "?" + text
    parts = text.split("&")
    for i, part in enumerate(parts):
        name, equals, _value = part.partition("=")
        if equals and _SECRET_NAME.search(unquote_plus(name)):
            parts[i] = f"{name}={REDACTED}"
    return "?" + "&".join(parts)


def _user_agent(headers: Any) -> str | None:
    for name, value in headers:
        if name == b"user-agent":
            return str(value.decode("latin-1"))
    return None


def escape(text: str) -> str:
    """The text on one line: control characters as \\xNN escapes."""
    return text if text.isprintable() else text.translate(_ESCAPES)


def trace_fields(context: RequestContext, project: str) -> dict[str, Any]:
    trace = f"projects/{project}/traces/{context.trace_id}" if project else context.trace_id
    return {TRACE: trace, SPAN_ID: context.span_id, TRACE_SAMPLED: context.sampled}


def access_severity(status: int) -> str:
    return "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"


class JsonFormatter(logging.Formatter):
    def __init__(self, project: str = "") -> None:
        super().__init__()
        self._project = project

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "severity": _CLOUD_SEVERITY.get(record.levelname, record.levelname),
            "message": record.getMessage(),
            "logger": record.name,
        }
        context = request_context.get()
        if context is not None:
            entry["request_id"] = context.request_id
            entry.update(trace_fields(context, self._project))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class ConsoleFormatter(logging.Formatter):
    """For people at a terminal: one short line, with the request id when there is one."""

    def __init__(self, project: str = "") -> None:
        super().__init__()

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record)} {record.levelname:<7} {record.name} "
        line += escape(record.getMessage())
        context = request_context.get()
        if context is not None:
            line += f" [{context.request_id}]"
        if record.exc_info:
            # Every traceback line indented and marked, so none can pass for a record.
            trace = self.formatException(record.exc_info).splitlines()
            line += "".join(f"\n  | {escape(part)}" for part in trace)
        return line


class AccessLog:
    """The one line per request, written straight to stdout in the configured format.

    The logging module's record, handler lock and formatter cost more than a whole /health
    request (measured in bench/); the fields are those of JsonFormatter all the same.
    """

    _logger = logging.getLogger("cme.access")
    _LEVELS: Final = {"INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}

    def __init__(self, fmt: str, project: str = "") -> None:
        self._json = fmt == "json"
        self._project = project

    def write(
        self,
        scope: Mapping[str, Any],
        route: str,
        status: int,
        seconds: float,
        context: RequestContext,
        subject: str | None,
    ) -> None:
        """One request's line, from its ASGI scope (method, path, query_string, client,
        headers) and what the middleware saw."""
        severity = access_severity(status)
        if not self._logger.isEnabledFor(self._LEVELS[severity]):
            return
        now = time.time()
        method = scope["method"]
        url = scope["path"] + redacted_query(scope.get("query_string", b""))
        if not self._json:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
            line = f"{stamp},{int(now % 1 * 1000):03d} {severity:<7} cme.access"
            line += f" {escape(method)} {escape(url)} {status} {seconds * 1000:.1f}ms"
            line += f" [{context.request_id}]\n"
            _emit(line.encode())
            return
        request: dict[str, Any] = {
            "requestMethod": method,
            "requestUrl": url,
            "status": status,
            "latency": f"{seconds:.6f}s",
        }
        client = scope.get("client")
        if client:
            request["remoteIp"] = client[0]
        user_agent = _user_agent(scope.get("headers", ()))
        if user_agent is not None:
            request["userAgent"] = user_agent
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(now, UTC).isoformat(),
            "severity": severity,
            "message": f"{method} {url} {status}",
            "logger": "cme.access",
            "request_id": context.request_id,
            "httpRequest": request,
            "route": route,
            **trace_fields(context, self._project),
        }
        if subject is not None:
            entry["subject"] = subject
        _emit(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE))


def _emit(line: bytes) -> None:
    # Looked up on every call: tests and embedders may swap sys.stdout.
    stream = sys.stdout
    stream.flush()  # keep the order of lines the logging handler wrote
    stream.buffer.write(line)
    stream.buffer.flush()


def configure(level: str, fmt: str, project: str = "") -> dict[str, Any]:
    """Configure logging for this process and return the dict for uvicorn's own workers."""
    formatter = {"()": JsonFormatter if fmt == "json" else ConsoleFormatter, "project": project}
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

"""Log records as one JSON object per line, in the fields Cloud Logging understands."""

import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

import orjson

_CLOUD_SEVERITY = {"WARNING": "WARNING", "CRITICAL": "CRITICAL"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "severity": _CLOUD_SEVERITY.get(record.levelname, record.levelname),
            "message": record.getMessage(),
            "logger": record.name,
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
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


def configure(level: str, fmt: str) -> dict[str, Any]:
    """Configure logging for this process and return the dict for uvicorn's own workers."""
    formatter = (
        {"()": JsonFormatter}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)-8s %(name)s %(message)s"}
    )
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

"""JSON structured logs with resident ID numbers and phone numbers masked
(``zwfw.codes.masking``)."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from zwfw.codes.masking import mask_value

_request_id: ContextVar[str | None] = ContextVar("zwfw_request_id", default=None)

# LogRecord attributes that are plumbing, not content.
_RECORD_FIELDS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def current_request_id() -> str | None:
    """The ``X-Request-ID`` of the request being handled in this context, if any."""
    return _request_id.get()


def set_request_id(request_id: str | None) -> Any:
    """Bind a request id to the current context; returns a token for ``reset_request_id``."""
    return _request_id.set(request_id)


def reset_request_id(token: Any) -> None:
    _request_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any ``extra``
    fields; every string is masked, including exception text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in entry and not key.startswith("_"):
                entry[key] = value if _is_json_native(value) else str(value)
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(mask_value(entry), ensure_ascii=False, separators=(",", ":"))


def _is_json_native(value: Any) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_is_json_native(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json_native(v) for k, v in value.items())
    return False


class _KitHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler the kit installed, so reconfiguring replaces it instead of adding."""


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Send all logs (the service's, uvicorn's, SQLAlchemy's) as masked JSON lines to ``stream``
    (standard error by default). Calling it again replaces the previous kit handler."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _KitHandler):
            root.removeHandler(handler)
    handler = _KitHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn installs its own plain-text handlers; route its records through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler

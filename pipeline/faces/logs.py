"""Log lines on stderr: readable text, or one JSON object per line (``--log-format json``) for a log
pipeline (Loki, Elasticsearch, CloudWatch) to index without parsing prose."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``time``, ``level``, ``logger``, ``message``, any ``extra=`` fields, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class _Stderr(logging.StreamHandler):
    """ragline's own handler: replaced, not added to, when logging is set up again (a second CLI call in one
    process); other handlers (a host program's, pytest's) stay."""


def setup(level: str, json_lines: bool) -> None:
    """The root logger on stderr at ``level``, as text or JSON lines."""
    handler = _Stderr()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _Stderr)] + [handler]
    root.setLevel(level)


def json_lines() -> bool:
    """Whether :func:`setup` chose JSON lines."""
    return any(isinstance(h, _Stderr) and isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)

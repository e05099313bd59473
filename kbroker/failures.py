"""Failures the broker answers with an error code but must also tell its operator about.

A full disk fails every produce, every offset commit and every topic creation: one
log line per request would flood the log while the disk stays full, none at all
leaves the operator blind (Kafka logs each log-dir failure once, when it takes the
directory offline). ``warn_rate_limited`` logs the first failure of a kind at once,
then at most one line per ``interval_s`` naming how many were not logged since.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kbroker.log.errors import LogError

__all__ = [
    "is_storage_error",
    "storage_failure_kind",
    "warn_rate_limited",
    "warn_storage_failure",
]

DEFAULT_INTERVAL_S = 60.0

# kind -> (monotonic time of the last line, failures not logged since)
_last: dict[str, tuple[float, int]] = {}


def is_storage_error(exc: BaseException) -> bool:
    """Kafka turns an IOException on a log into KafkaStorageException (KAFKA_STORAGE_ERROR)."""
    return isinstance(exc, (LogError, OSError))


def warn_rate_limited(
    logger: logging.Logger,
    kind: str,
    message: str,
    *args: Any,
    interval_s: float = DEFAULT_INTERVAL_S,
) -> bool:
    """Log ``message % args`` as a warning unless ``kind`` was logged in the last ``interval_s``.

    Returns whether a line was written.
    """
    now = time.monotonic()
    last, suppressed = _last.get(kind, (-float("inf"), 0))
    if now - last < interval_s:
        _last[kind] = (last, suppressed + 1)
        return False
    _last[kind] = (now, 0)
    if suppressed:
        message += " (%d more like it in the last %.0f s)"
        args = (*args, suppressed, now - last)
    logger.warning(message, *args)
    return True


def storage_failure_kind(exc: BaseException) -> str:
    """A kind for warn_rate_limited: the exception type and errno (ENOSPC, EIO...)."""
    errno = getattr(exc, "errno", None)
    return f"{type(exc).__name__}:{errno}" if errno is not None else type(exc).__name__


def warn_storage_failure(
    exc: BaseException, logger: logging.Logger, area: str, message: str, *args: Any
) -> None:
    """Called in an ``except`` block: re-raise ``exc`` unless it is a storage failure; warn
    of one (rate-limited per ``area`` and kind), so the caller can answer KAFKA_STORAGE_ERROR."""
    if not is_storage_error(exc):
        raise exc
    warn_rate_limited(logger, f"{area}:{storage_failure_kind(exc)}", message, *args)

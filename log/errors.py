"""Errors raised by the partition log."""

from __future__ import annotations


class LogError(Exception):
    """The log cannot do what was asked (bad input, I/O trouble, closed log)."""


class OffsetOutOfRange(LogError):
    """An offset lies outside [log_start_offset, log_end_offset].

    Kafka answers OFFSET_OUT_OF_RANGE (1) with the current log start and end,
    so the error carries both for the fetch handler.
    """

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(f"offset {offset} outside [{log_start_offset}, {log_end_offset}]")
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset

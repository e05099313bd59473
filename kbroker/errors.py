"""Errors raised inside the broker that map onto a Kafka error code.

Handlers catch ``KafkaApiError`` around each topic / partition / resource and
put ``code`` (and ``message`` where the response has an error-message field)
into their response body: Kafka reports almost every failure inside the
response, not by closing the connection. One escaping a handler is a bug in
that handler; the server logs it and closes the connection.
"""

from __future__ import annotations

from kbroker.wire.errors import ErrorCode


class KafkaApiError(Exception):
    """A failure that Kafka reports to the client as ``code`` (+ optional message)."""

    def __init__(self, code: ErrorCode | int, message: str | None = None) -> None:
        code = ErrorCode(code)
        super().__init__(f"{code.name}({int(code)})" + (f": {message}" if message else ""))
        self.code: ErrorCode = code
        self.message: str | None = message


def unknown_topic(name: str) -> KafkaApiError:
    """UNKNOWN_TOPIC_OR_PARTITION with Kafka's text (UnknownTopicOrPartitionException as
    AdminManager and the controller word it)."""
    return KafkaApiError(
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist."
    )

"""The error tree of the codec, and Kafka's error-code table.

``DecodeError`` means the peer sent something bad; ``EncodeError`` means we
were asked to encode something invalid. Only ``DecodeError`` (and its
subclasses) may escape a decode. (Shape taken from h11's
RemoteProtocolError / LocalProtocolError split.)
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class of every error raised by the codec."""


class DecodeError(ProtocolError):
    """The peer sent bytes that are not valid Kafka protocol."""


class EncodeError(ProtocolError):
    """We were asked to encode a value that the schema does not allow."""


class FrameTooLarge(DecodeError):
    """A frame's size prefix is negative or exceeds the configured maximum."""

    def __init__(self, size: int, max_size: int) -> None:
        super().__init__(f"frame size {size} outside 0..{max_size}")
        self.size = size
        self.max_size = max_size


class UnsupportedVersion(DecodeError):
    """The header parsed, but the (api key, version) pair is not implemented.

    Carries what the server needs to answer: Kafka replies to an unsupported
    ApiVersions request with UNSUPPORTED_VERSION and a v0 body (KIP-511) and
    closes the connection for any other API.
    """

    def __init__(self, api_key: int, api_version: int, correlation_id: int) -> None:
        super().__init__(f"unsupported api key {api_key} version {api_version}")
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id


class InvalidRecordBatch(DecodeError):
    """A record batch failed validation; ``error_code`` is Kafka's answer to it.

    CORRUPT_MESSAGE (2) for a bad CRC, magic, or length; INVALID_RECORD (87)
    for records inconsistent with their batch header;
    UNSUPPORTED_COMPRESSION_TYPE (76) for an unknown codec.
    """

    def __init__(self, message: str, error_code: int = 2) -> None:
        super().__init__(message)
        self.error_code = error_code

"""What TLS and SASL cost: produce/consume throughput at 10 KB values over PLAINTEXT, SSL
and SASL_SSL (SCRAM-SHA-512) listeners of one broker in the same run, and SCRAM-SHA-256
logins per second (connect, ApiVersions, SaslHandshake, two SaslAuthenticate round trips).

Run: `.venv/bin/python bench/security.py [--megabytes 200] [--logins 300]`
Starts its own kbroker (`--config` with five listeners, certificates made with trustme) and
prints a table; nothing is asserted. The client (confluent-kafka) shares the machine's cores.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import scramp  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from compat.security_kit import (  # noqa: E402
    CASES,
    ConfigFileBroker,
    librdkafka_settings,
    secured_broker,
)
from kbroker.wire.frames import FrameDecoder  # noqa: E402
from kbroker.wire.messages import (  # noqa: E402
    ApiVersionsRequest,
    SaslAuthenticateRequest,
    SaslHandshakeRequest,
)
from kbroker.wire.protocol import decode_response, encode_request  # noqa: E402

MB = 1_000_000
VALUE = 10_000


def throughput(conf: dict[str, object], megabytes: int) -> tuple[float, float]:
    """(produce MB/s, consume MB/s) for ``megabytes`` of 10 KB values on a fresh topic."""
    topic = f"bench-security-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(conf)  # kept referenced: a collected client cancels its futures
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    count = megabytes * MB // VALUE
    value = b"x" * VALUE
    producer = Producer({**conf, "linger.ms": 5, "batch.size": 1_000_000})
    started = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(120)
    produce_s = time.perf_counter() - started
    consumer = Consumer(
        {**conf, "group.id": f"bench-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    got = 0
    started = time.perf_counter()
    while got < count:
        for msg in consumer.consume(1000, 10):
            if msg.error() is None:
                got += 1
    consume_s = time.perf_counter() - started
    consumer.close()
    total = count * VALUE / MB
    return total / produce_s, total / consume_s


def _request(sock: socket.socket, decoder: FrameDecoder, body: object, version: int) -> object:
    api_key = body.API_KEY  # type: ignore[attr-defined]
    sock.sendall(encode_request(api_key, version, 1, "bench", body))
    while (frame := decoder.next_frame()) is None:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        decoder.feed(data)
    return decode_response(api_key, version, frame)[1]


def scram_logins(live: ConfigFileBroker, count: int) -> float:
    """SCRAM-SHA-256 logins per second, one connection after another."""
    host, port = live.listeners["SASL_PLAINTEXT"]
    user, password = CASES["sasl_plaintext_scram_sha_256"].user, "s256-secret"
    started = time.perf_counter()
    for _ in range(count):
        with socket.create_connection((host, port)) as sock:
            decoder = FrameDecoder()
            _request(sock, decoder, ApiVersionsRequest(), 0)
            _request(sock, decoder, SaslHandshakeRequest(mechanism="SCRAM-SHA-256"), 1)
            client = scramp.ScramClient(["SCRAM-SHA-256"], user, password)
            first = _request(
                sock,
                decoder,
                SaslAuthenticateRequest(auth_bytes=client.get_client_first().encode()),
                2,
            )
            client.set_server_first(bytes(first.auth_bytes).decode())  # type: ignore[attr-defined]
            final = _request(
                sock,
                decoder,
                SaslAuthenticateRequest(auth_bytes=client.get_client_final().encode()),
                2,
            )
            assert final.error_code == 0, final  # type: ignore[attr-defined]
            client.set_server_final(bytes(final.auth_bytes).decode())  # type: ignore[attr-defined]
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--logins", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, secured_broker(Path(tmp)) as pair:
        live, material = pair
        rows = []
        for label, case in (
            ("PLAINTEXT", None),
            ("SSL", CASES["ssl"]),
            ("SASL_SSL SCRAM-SHA-512", CASES["sasl_ssl_scram_sha_512"]),
        ):
            conf = (
                {"bootstrap.servers": live.bootstrap("PLAINTEXT")}
                if case is None
                else librdkafka_settings(pair, case)
            )
            rows.append((label, *throughput(conf, args.megabytes)))
        logins = scram_logins(live, args.logins)
    print(f"10 KB values, {args.megabytes} MB per phase, one partition")
    print(f"{'listener':<24} {'produce MB/s':>13} {'consume MB/s':>13}")
    for label, produce, consume in rows:
        print(f"{label:<24} {produce:>13.1f} {consume:>13.1f}")
    print(f"SCRAM-SHA-256 logins (4096 iterations), sequential: {logins:.0f} per second")


if __name__ == "__main__":
    main()

"""Mutated request frames of every served API: the broker never fails on one.

A few thousand seeded mutants (kbroker.testing.fuzz_frames; bench/adversarial.py runs
the long version) are sent one at a time. Each is answered, or its connection is
closed; no handler may fail with a traceback, the broker keeps answering, and it
starts again on the data dir the fuzzing left behind.
"""

from __future__ import annotations

import logging

import trio

from kbroker.testing.fuzz_frames import GROUP, TOPIC, mutated_frames
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import ApiVersionsRequest
from tests.kbroker.helpers import create_topic, produce, records

SEED = 20261207
FRAMES = 3000
# A mutant may be a legitimately long request (a long poll, a join waiting for
# its group): after this long, the client moves on to a new connection.
PATIENCE_S = 0.3
LIMITS = {
    "group.initial.rebalance.delay.ms": 0,
    "offsets.topic.num.partitions": 1,
    "transaction.state.log.num.partitions": 1,
    "max.partitions.per.request": 20,
    "max.broker.partitions": 300,
    "auto.create.topics.max.per.request": 3,
}


async def test_mutated_frames_never_make_a_handler_fail(make_server, caplog) -> None:
    server = await make_server(**LIMITS)
    create_topic(server, TOPIC, 2)
    setup = await server.connect()
    await produce(setup, TOPIC, 0, records(3))
    await produce(setup, TOPIC, 1, records(3))
    await setup.aclose()
    assert GROUP
    answered = closed = waited = 0
    client = await server.connect()
    with caplog.at_level(logging.WARNING, logger="kbroker"):
        for _, _, frame in mutated_frames(SEED, FRAMES):
            try:
                await client.send_raw(frame)
                with trio.move_on_after(PATIENCE_S) as patience:
                    response = await client.receive_raw()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                response = None
            if patience.cancelled_caught:
                waited += 1
            elif response is not None:
                answered += 1
                continue
            else:
                closed += 1
            await client.aclose()
            client = await server.connect()
        failures = [
            f"{r.name}: {r.getMessage()}"
            for r in caplog.records
            if r.levelno >= logging.ERROR or r.exc_info is not None
        ]
    assert failures == []
    assert answered > FRAMES // 10 and closed > FRAMES // 10  # both paths exercised
    ping = await client.request(
        ApiVersionsRequest(client_software_name="t", client_software_version="1")
    )
    assert ping.error_code == ErrorCode.NONE
    topics = sorted(server.broker.topics.topics)
    await server.stop()
    again = await make_server(log_dirs=server.config["log.dirs"][0], **LIMITS)
    assert sorted(again.broker.topics.topics) == topics
    print(f"{FRAMES} frames: {answered} answered, {closed} closed, {waited} still waiting")

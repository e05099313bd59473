"""client.py and channel.py against fake brokers: version negotiation, order, reconnects."""

from __future__ import annotations

import logging

import pytest
import trio

from kbroker.cluster.channel import ControllerChannel
from kbroker.cluster.client import ConnectionLost, KafkaClient, KafkaClientError
from kbroker.wire.messages import REQUESTS
from tests.cluster.fake_broker import FakeBroker

UPDATE_METADATA = 6


def _update(n: int) -> object:
    return REQUESTS[UPDATE_METADATA](controller_id=1, controller_epoch=n)


async def test_client_negotiates_versions_and_round_trips(nursery: trio.Nursery) -> None:
    fake = FakeBroker(1, versions={18: (0, 3), 6: (0, 5)})
    port = await nursery.start(fake.serve)
    async with await KafkaClient.connect("127.0.0.1", port) as client:
        assert client.version_for(6) == 5  # the lower of the two maxima
        assert client.version_for(4) is None
        resp = await client.request(UPDATE_METADATA, _update(7))
        assert resp.error_code == 0
        with pytest.raises(KafkaClientError):
            await client.request(4, REQUESTS[4]())
    assert fake.of(UPDATE_METADATA)[0].controller_epoch == 7
    fake.stop()


async def test_client_reports_a_lost_connection(nursery: trio.Nursery) -> None:
    fake = FakeBroker(1)
    port = await nursery.start(fake.serve)
    client = await KafkaClient.connect("127.0.0.1", port)
    fake.drop_next = 1
    with pytest.raises(ConnectionLost):
        await client.request(UPDATE_METADATA, _update(1))
    assert client.closed
    fake.stop()


async def test_connect_to_nothing_fails_cleanly() -> None:
    with trio.socket.socket() as s:
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionLost):
        await KafkaClient.connect("127.0.0.1", port)


async def test_channel_keeps_order_per_broker_and_retries(nursery: trio.Nursery) -> None:
    a, b = FakeBroker(1), FakeBroker(2)
    pa = await nursery.start(a.serve)
    pb = await nursery.start(b.serve)
    channel = ControllerChannel()
    await nursery.start(channel.run)
    channel.add_broker(1, "127.0.0.1", pa)
    channel.add_broker(2, "127.0.0.1", pb)
    a.drop_next = 2  # the first two attempts die with the connection
    answered: list[tuple[int, int]] = []
    for n in range(20):
        for broker in (1, 2):
            channel.send(
                broker,
                UPDATE_METADATA,
                _update(n),
                lambda bid, resp: answered.append((bid, resp.error_code)),
            )
    await a.wait_for(lambda: len(a.of(UPDATE_METADATA)) == 20)
    await b.wait_for(lambda: len(b.of(UPDATE_METADATA)) == 20)
    assert [r.controller_epoch for r in a.of(UPDATE_METADATA)] == list(range(20))
    assert [r.controller_epoch for r in b.of(UPDATE_METADATA)] == list(range(20))
    assert a.connections >= 3  # it reconnected
    with trio.fail_after(5):
        while len(answered) < 40:
            await trio.sleep(0.01)
    assert not channel.send(3, UPDATE_METADATA, _update(0))  # no channel to broker 3
    channel.remove_broker(1)
    assert not channel.send(1, UPDATE_METADATA, _update(0))
    a.stop()
    b.stop()


async def test_channel_to_a_dead_broker_retries_until_removed(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kbroker.cluster.channel")
    with trio.socket.socket() as s:
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    channel = ControllerChannel()
    await nursery.start(channel.run)
    channel.add_broker(5, "127.0.0.1", port)
    channel.send(5, UPDATE_METADATA, _update(0))

    def attempts() -> int:
        """The failed attempts so far (each is logged, the first at INFO)."""
        return sum("retrying" in rec.getMessage() for rec in caplog.records)

    # Several failed attempts, none of them fatal.
    with trio.fail_after(10):
        while attempts() < 3:
            await trio.sleep(0.01)
    channel.remove_broker(5)
    assert channel.brokers == set()


async def test_a_broker_that_does_not_know_its_epoch_yet_gets_the_request_again(
    nursery: trio.Nursery,
) -> None:
    # A broker refuses requests for an epoch it has not learned yet (its registration
    # create() has not returned); the request is resent until it is accepted.
    fake = FakeBroker(1, refuse_stale_epoch=3)
    port = await nursery.start(fake.serve)
    channel = ControllerChannel()
    await nursery.start(channel.run)
    channel.add_broker(1, "127.0.0.1", port)
    answers: list[int] = []
    channel.send(1, UPDATE_METADATA, _update(1), lambda _b, r: answers.append(r.error_code))
    channel.send(1, UPDATE_METADATA, _update(2), lambda _b, r: answers.append(r.error_code))
    with trio.fail_after(5):
        while len(answers) < 2:
            await trio.sleep(0.01)
    assert answers == [0, 0]
    # Seen 3 refused attempts of the first, then both accepted, in order.
    assert [r.controller_epoch for r in fake.of(UPDATE_METADATA)] == [1, 1, 1, 1, 2]
    fake.stop()


async def test_a_broker_that_does_not_answer_gets_the_request_again(
    nursery: trio.Nursery,
) -> None:
    fake = FakeBroker(1, hang_next=1)  # swallows the first request without answering
    port = await nursery.start(fake.serve)
    channel = ControllerChannel(request_timeout_s=0.3)
    await nursery.start(channel.run)
    channel.add_broker(1, "127.0.0.1", port)
    answers: list[int] = []
    channel.send(1, UPDATE_METADATA, _update(5), lambda _b, r: answers.append(r.error_code))
    with trio.fail_after(5):
        while not answers:
            await trio.sleep(0.01)
    assert answers == [0] and fake.connections == 2
    fake.stop()

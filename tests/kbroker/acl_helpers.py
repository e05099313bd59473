"""Helpers for tests of the ACL authorizer: a broker with it on, ACLs granted by a super
user, and connections authenticated as a given principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from kbroker.wire.messages import CreateAclsRequest
from tests.kbroker.helpers import create_topic, produce, records

AUTHORIZER = "kafka.security.authorizer.AclAuthorizer"
ADMIN, ALICE, BOB = "User:admin", "User:alice", "User:bob"

MakeServer = Callable[..., Awaitable[Any]]


async def secured(
    make_server: MakeServer,
    *grants: CreateAclsRequest.AclCreation,
    topics: tuple[str, ...] = (),
    **overrides: Any,
) -> Any:
    """A broker with the ACL authorizer (super users admin and ops), its ``topics`` created
    and the ACLs ``grants`` granted by the admin."""
    server = await make_server(
        authorizer_class_name=AUTHORIZER, super_users=f"{ADMIN};User:ops", **overrides
    )
    for name in topics:
        create_topic(server, name)
    if grants:
        async with await connect_as(server, ADMIN) as admin:
            await grant(admin, *grants)
    return server


async def connect_as(server: Any, principal: str) -> Any:
    """A RawClient whose connection is ``principal`` (what SASL would have set)."""
    client = await server.connect()
    host, port = client.stream.socket.getsockname()[:2]
    for _ in range(1000):
        for conn in server.server.connections:
            if conn.peer == f"{host}:{port}":
                conn.principal = principal
                return client
        await trio.sleep(0)
    raise AssertionError("the broker never registered the connection")


async def grant(admin: Any, *creations: CreateAclsRequest.AclCreation) -> None:
    resp = await admin.request(CreateAclsRequest(creations=list(creations)))
    assert [r.error_code for r in resp.results] == [0] * len(creations), resp


async def produce_as(server: Any, principal: str, topic: str) -> int:
    """The error code of ``principal`` producing one record to ``topic``'s partition 0."""
    async with await connect_as(server, principal) as client:
        return int((await produce(client, topic, 0, records(1))).error_code)

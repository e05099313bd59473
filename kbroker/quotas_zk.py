"""Client quotas in ZooKeeper, where a ZooKeeper-mode Kafka keeps them (ConfigType.User /
ConfigType.Client, kafka.zk.ZkData):

- ``/config/users/<user>``, ``/config/users/<user>/clients/<client id>``,
  ``/config/clients/<client id>``, each name URL-encoded (Kafka's Sanitizer) and
  ``<default>`` for the default entity; data ``{"version":1,"config":{key: "value"}}``,
  keeping whatever else the znode holds (SCRAM credentials live in the same user znode);
- after a change a ``/config/changes/config_change_`` notification names the entity
  (``users/alice/clients/app``), and every broker re-reads that entity.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from kbroker.cluster import znodes
from kbroker.quotas import QUOTA_KEYS, Entity, QuotaManager, make_entity

DEFAULT = "<default>"
CONFIG_ROOT = "/config"


def _sanitize(name: str | None) -> str:
    # Sanitizer.sanitize: URL-encoding, with "*" encoded and spaces as %20.
    return DEFAULT if name is None else quote(name, safe="").replace("*", "%2A")


def _desanitize(text: str) -> str | None:
    return None if text == DEFAULT else unquote(text)


def entity_path(entity: Entity) -> str:
    """``users/alice/clients/app`` style path of an entity, under /config."""
    names = dict(entity)
    parts: list[str] = []
    if "user" in names:
        parts += ["users", _sanitize(names["user"])]
    if "client-id" in names:
        parts += ["clients", _sanitize(names["client-id"])]
    return "/".join(parts)


def entity_of(path: str) -> Entity:
    """The entity of an entity path (the inverse of ``entity_path``)."""
    parts = path.strip("/").split("/")
    pairs: list[tuple[str, str | None]] = []
    for kind, name in zip(parts[::2], parts[1::2], strict=True):
        pairs.append(({"users": "user", "clients": "client-id"}[kind], _desanitize(name)))
    return make_entity(pairs)


async def read_config(zk: Any, path: str) -> tuple[dict[str, Any], int | None]:
    """The config map of ``/config/<path>`` and the znode's version (None when absent)."""
    from kbroker.cluster.zk import NoNode

    try:
        data, stat = await zk.get(f"{CONFIG_ROOT}/{path}")
    except NoNode:
        return {}, None
    body = json.loads(data) if data else {}
    return dict(body.get("config") or {}), stat.version


async def update_config(
    zk: Any, path: str, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    """Replace the config map of ``/config/<path>`` by ``change`` of it and announce the change
    with a ``/config/changes`` notification (AdminZkClient.changeConfigs). Quotas and SCRAM
    credentials share a user's znode, so ``change`` keeps the keys it does not own; when
    another writer got there first the map is read and changed again."""
    from kbroker.cluster.zk import BadVersion, NodeExists

    while True:
        config, version = await read_config(zk, path)
        config = change(config)
        data = json.dumps({"version": 1, "config": config}, separators=(",", ":")).encode()
        try:
            if version is None:
                await zk.create(f"{CONFIG_ROOT}/{path}", data, makepath=True)
            else:
                await zk.set(f"{CONFIG_ROOT}/{path}", data, version)
        except (BadVersion, NodeExists):
            continue  # changed meanwhile: merge again
        break
    await zk.create(
        f"{znodes.CONFIG_CHANGES}/{znodes.CONFIG_CHANGE_PREFIX}",
        znodes.encode_config_change(path),
        sequence=True,
        makepath=True,
    )


def _quota_values(config: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in config.items() if k in QUOTA_KEYS}


async def write(zk: Any, entity: Entity, values: dict[str, float]) -> None:
    """Replace the entity's quota values (other keys of the znode kept) and announce it."""

    def change(config: dict[str, Any]) -> dict[str, Any]:
        config = {k: v for k, v in config.items() if k not in QUOTA_KEYS}
        config.update({k: repr(v) if k not in _LONGS else str(int(v)) for k, v in values.items()})
        return config

    await update_config(zk, entity_path(entity), change)


_LONGS = frozenset({"producer_byte_rate", "consumer_byte_rate"})


async def reload(zk: Any, manager: QuotaManager, path: str) -> None:
    """Re-read one entity (after a change notification)."""
    config, _ = await read_config(zk, path)
    manager.replace(entity_of(path), _quota_values(config))


async def load_all(zk: Any, manager: QuotaManager) -> None:
    """Read every user and client quota znode."""
    from kbroker.cluster.zk import NoNode

    async def children(path: str) -> list[str]:
        try:
            return list(await zk.get_children(f"{CONFIG_ROOT}/{path}"))
        except NoNode:
            return []

    paths: list[str] = []
    for user in await children("users"):
        paths.append(f"users/{user}")
        paths += [f"users/{user}/clients/{c}" for c in await children(f"users/{user}/clients")]
    paths += [f"clients/{c}" for c in await children("clients")]
    for path in paths:
        await reload(zk, manager, path)

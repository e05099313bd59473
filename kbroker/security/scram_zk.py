"""SCRAM credentials in ZooKeeper, where a ZooKeeper-mode Kafka keeps them (ConfigType.User):
``/config/users/<user>`` (URL-encoded name) holds ``{"version":1,"config":{...}}`` with one
key per mechanism, ``"SCRAM-SHA-256": "salt=<b64>,stored_key=<b64>,server_key=<b64>,
iterations=<n>"`` (ScramCredentialUtils.credentialToString), beside any quota keys of the
same user, which are kept. After a change a ``/config/changes/config_change_`` notification
names ``users/<user>`` and every broker re-reads that user.
"""

from __future__ import annotations

import base64
from typing import Any

from kbroker.quotas_zk import CONFIG_ROOT, _desanitize, _sanitize, read_config, update_config
from kbroker.security.scram import MECHANISM_CODES, ScramCredential, ScramStore


def credential_text(credential: ScramCredential) -> str:
    """Kafka's text form of a credential."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return (
        f"salt={b64(credential.salt)},stored_key={b64(credential.stored_key)},"
        f"server_key={b64(credential.server_key)},iterations={credential.iterations}"
    )


def parse_credential_text(text: str) -> ScramCredential:
    """The credential of Kafka's text form; ValueError if malformed."""
    fields = dict(item.split("=", 1) for item in text.split(","))
    return ScramCredential(
        base64.b64decode(fields["salt"]),
        base64.b64decode(fields["stored_key"]),
        base64.b64decode(fields["server_key"]),
        int(fields["iterations"]),
    )


async def write_user(zk: Any, user: str, changes: dict[str, ScramCredential | None]) -> None:
    """Set (or with None remove) a user's credentials per mechanism, keeping the znode's other
    keys, and announce the change."""

    def change(config: dict[str, Any]) -> dict[str, Any]:
        for mechanism, credential in changes.items():
            if credential is None:
                config.pop(mechanism, None)
            else:
                config[mechanism] = credential_text(credential)
        return config

    await update_config(zk, f"users/{_sanitize(user)}", change)


async def reload_user(zk: Any, store: ScramStore, entity_path: str) -> None:
    """Re-read one user's credentials (``users/<user>``, from a change notification)."""
    parts = entity_path.strip("/").split("/")
    if len(parts) != 2 or parts[0] != "users":
        return  # a users/<u>/clients/<c> quota entity has no credentials
    user = _desanitize(parts[1])
    if user is None:
        return
    config, _ = await read_config(zk, entity_path)
    store.users.pop(user, None)
    for mechanism in MECHANISM_CODES:
        if mechanism in config:
            store.put(user, mechanism, parse_credential_text(str(config[mechanism])))


async def load_all(zk: Any, store: ScramStore) -> None:
    """Read every user's credentials."""
    from kbroker.cluster.zk import NoNode

    try:
        users = list(await zk.get_children(f"{CONFIG_ROOT}/users"))
    except NoNode:
        return
    store.users.clear()
    for user in users:
        await reload_user(zk, store, f"users/{user}")

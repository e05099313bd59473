"""SCRAM credentials (RFC 5802 / RFC 7677), stored as Kafka stores them: salt, StoredKey,
ServerKey and iteration count per user and mechanism, never the password.

Created and removed with AlterUserScramCredentials (KIP-554: the client sends the salt and
the salted password, so the password itself never reaches the broker) and listed with
DescribeUserScramCredentials. A single node keeps them in ``kbroker-scram-credentials.json``
in its data dir, replaced atomically on every change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kbroker.log.checkpoint import atomic_write

if TYPE_CHECKING:
    from kbroker.broker import BrokerState

logger = logging.getLogger(__name__)

CREDENTIALS_FILE = "kbroker-scram-credentials.json"
# Kafka's ScramMechanism: the int8 codes of AlterUserScramCredentials and its hashes.
MECHANISMS: dict[int, tuple[str, str]] = {
    1: ("SCRAM-SHA-256", "sha256"),
    2: ("SCRAM-SHA-512", "sha512"),
}
MECHANISM_CODES = {name: code for code, (name, _) in MECHANISMS.items()}
# Kafka's ScramMechanism.minIterations / maxIterations (RFC 7677 asks for at least 4096).
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """What the server keeps of a SCRAM password."""

    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    @classmethod
    def from_salted_password(
        cls, mechanism: str, salt: bytes, salted_password: bytes, iterations: int
    ) -> ScramCredential:
        """RFC 5802 §3: ClientKey = HMAC(SaltedPassword, "Client Key"), StoredKey = H(ClientKey),
        ServerKey = HMAC(SaltedPassword, "Server Key")."""
        digest = _digest(mechanism)
        client_key = hmac.new(salted_password, b"Client Key", digest).digest()
        server_key = hmac.new(salted_password, b"Server Key", digest).digest()
        return cls(salt, hashlib.new(digest, client_key).digest(), server_key, iterations)

    @classmethod
    def from_password(
        cls, mechanism: str, password: str, salt: bytes, iterations: int
    ) -> ScramCredential:
        """The credential of a password (``kbroker users`` and tests)."""
        salted = hashlib.pbkdf2_hmac(_digest(mechanism), password.encode(), salt, iterations)
        return cls.from_salted_password(mechanism, salt, salted, iterations)


def _digest(mechanism: str) -> str:
    return MECHANISMS[MECHANISM_CODES[mechanism]][1]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class ScramStore:
    """The SCRAM credentials of every user: user → mechanism name → credential."""

    def __init__(self, path: Path | None) -> None:
        """``path``: the file kept in the data dir; None: in memory only (cluster mode)."""
        self.path = path
        self.users: dict[str, dict[str, ScramCredential]] = {}
        if path is not None and path.exists():
            doc = json.loads(path.read_text())
            for user, mechanisms in doc.get("users", {}).items():
                self.users[user] = {
                    name: ScramCredential(
                        base64.b64decode(c["salt"]),
                        base64.b64decode(c["stored_key"]),
                        base64.b64decode(c["server_key"]),
                        int(c["iterations"]),
                    )
                    for name, c in mechanisms.items()
                }

    def get(self, user: str, mechanism: str) -> ScramCredential | None:
        """The credential of ``user`` for ``mechanism``, or None."""
        return self.users.get(user, {}).get(mechanism)

    def put(self, user: str, mechanism: str, credential: ScramCredential) -> None:
        """Add or replace a credential (call ``save`` after a batch)."""
        self.users.setdefault(user, {})[mechanism] = credential

    def delete(self, user: str, mechanism: str) -> bool:
        """Remove a credential; False if there was none."""
        mechanisms = self.users.get(user)
        if mechanisms is None or mechanisms.pop(mechanism, None) is None:
            return False
        if not mechanisms:
            del self.users[user]
        return True

    def save(self) -> None:
        """Write every credential (salted keys only) to the data dir, atomically."""
        if self.path is None:
            return
        doc: dict[str, Any] = {
            "version": 1,
            "users": {
                user: {
                    name: {
                        "salt": _b64(c.salt),
                        "stored_key": _b64(c.stored_key),
                        "server_key": _b64(c.server_key),
                        "iterations": c.iterations,
                    }
                    for name, c in sorted(mechanisms.items())
                }
                for user, mechanisms in sorted(self.users.items())
            },
        }
        atomic_write(self.path, json.dumps(doc, indent=1).encode())


def scram_store(broker: BrokerState) -> ScramStore:
    """The broker's SCRAM credentials: on a single node loaded from its data dir on first
    use; in cluster mode filled from ZooKeeper (kbroker.security.scram_zk)."""
    store = broker.state.get(__name__)
    if store is None:
        path = None if broker.config.cluster_mode else broker.data_dir / CREDENTIALS_FILE
        store = broker.state[__name__] = ScramStore(path)
    return store  # type: ignore[no-any-return]

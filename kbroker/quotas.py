"""Client quotas: Kafka's ClientQuotaManager for produce and fetch byte rates.

Quotas are set per user, per client id, or per (user, client id), each possibly the
default entity (name None), through AlterClientQuotas; the quota that applies to a
request is the most specific one, in Kafka's order (DefaultQuotaCallback):
user+client, user+default client, user, default user+client, default user+default
client, default user, client, default client. Clients sharing the matched entity share
its rate: bytes are counted per (user, client id) only as far as the entity names them.

The rate is Kafka's windowed Rate: ``quota.window.num`` (11) samples of
``quota.window.size.seconds`` (1 s). A request that takes the rate over the quota is
throttled for ``(rate - quota) / quota * window`` ms (QuotaUtils.throttleTime): the
response carries throttle_time_ms and the connection reads nothing more for that long
(KIP-219; a throttled fetch answers no data, as Kafka's).

Request-rate quotas (``request_percentage``, ClientRequestQuotaManager) bound the time a
client's requests keep the broker busy, as a percentage of one request thread over the
quota window (200 = two threads' worth): each request's handler time is recorded as
``seconds * 100`` on a rate per second, and a request that takes the rate over the quota
is throttled the same way, for at most one quota window
(ClientRequestQuotaManager.maxThrottleTimeMs). Requests brokers send each other are exempt.

A single broker keeps its quotas in ``quotas.json`` in the data dir; a cluster keeps them
in ZooKeeper (kbroker.quotas_zk).
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kbroker.broker import BrokerState

__all__ = [
    "CONSUMER_BYTE_RATE",
    "PRODUCER_BYTE_RATE",
    "QUOTA_FILE",
    "Entity",
    "QUOTA_KEYS",
    "REQUEST_PERCENTAGE",
    "InvalidQuota",
    "QuotaManager",
    "make_entity",
    "quota_manager",
    "user_of",
]

QUOTA_FILE = "quotas.json"
PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
# QuotaConfigs: the keys a user / client-id entity may carry; the byte rates are longs.
REQUEST_PERCENTAGE = "request_percentage"
QUOTA_KEYS = _KEYS = {
    PRODUCER_BYTE_RATE: "long",
    CONSUMER_BYTE_RATE: "long",
    REQUEST_PERCENTAGE: "double",
    "controller_mutation_rate": "double",
}
USER, CLIENT_ID = "user", "client-id"
WINDOW_NUM = 11  # quota.window.num
WINDOW_S = 1.0  # quota.window.size.seconds

# An entity: sorted (type, name) pairs; name None is the type's default entity.
Entity = tuple[tuple[str, str | None], ...]


class InvalidQuota(ValueError):
    """Refused with INVALID_REQUEST; ``str()`` is the message."""


def user_of(principal: str) -> str:
    """The user a quota entity names for a principal ("User:alice" -> "alice")."""
    return principal.partition(":")[2] or principal


def make_entity(pairs: list[tuple[str, str | None]]) -> Entity:
    """Validate an entity (ClientQuotaEntity as Kafka accepts it)."""
    if not pairs:
        raise InvalidQuota("Invalid empty client quota entity")
    types = [t for t, _ in pairs]
    for entity_type in types:
        if entity_type not in (USER, CLIENT_ID):
            raise InvalidQuota(f"Unsupported client quota entity type: {entity_type}")
        if types.count(entity_type) > 1:
            raise InvalidQuota(f"Duplicate {entity_type} entity in client quota entity")
    return tuple(sorted(pairs, key=lambda p: p[0]))


@dataclass
class _Rate:
    """Kafka's SampledStat Rate over WINDOW_NUM windows of WINDOW_S."""

    samples: deque[list[float]] = field(default_factory=deque)  # [window start, total]

    def record(self, value: float, now: float) -> None:
        while self.samples and self.samples[0][0] <= now - WINDOW_NUM * WINDOW_S:
            self.samples.popleft()
        if not self.samples or now - self.samples[-1][0] >= WINDOW_S:
            self.samples.append([now, 0.0])
        self.samples[-1][1] += value

    def measure(self, now: float) -> tuple[float, float]:
        """(rate per second, the window it is measured over in seconds)."""
        if not self.samples:
            return 0.0, (WINDOW_NUM - 1) * WINDOW_S
        elapsed = now - self.samples[0][0]
        full = int(elapsed / WINDOW_S)
        if full < WINDOW_NUM - 1:
            elapsed += (WINDOW_NUM - 1 - full) * WINDOW_S
        return sum(s[1] for s in self.samples) / elapsed, elapsed


class QuotaManager:
    """The broker's quota settings and the byte-rate sensors they are checked against."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.quotas: dict[Entity, dict[str, float]] = {}
        self._rates: dict[tuple[str, str, str], _Rate] = {}
        if path is not None:
            self._load(path)

    # --- settings ------------------------------------------------------------------

    @staticmethod
    def check_op(key: str, value: float, remove: bool) -> None:
        """InvalidQuota unless ``key`` may be set to ``value`` (or removed)."""
        kind = _KEYS.get(key)
        if kind is None:
            raise InvalidQuota(f"Invalid configuration key {key}")
        if remove:
            return
        if not math.isfinite(value) or value <= 0:
            raise InvalidQuota(f"Invalid value {value} for configuration {key}: must be positive")
        if kind == "long" and value != int(value):
            raise InvalidQuota(f"Invalid value {value} for configuration {key}: must be a long")

    def altered(self, entity: Entity, ops: list[tuple[str, float, bool]]) -> dict[str, float]:
        """The entity's values once validated set/remove operations are applied (unsaved)."""
        values = dict(self.quotas.get(entity, {}))
        for key, value, remove in ops:
            if remove:
                values.pop(key, None)
            else:
                values[key] = value
        return values

    def alter(self, entity: Entity, ops: list[tuple[str, float, bool]]) -> None:
        """Apply validated set/remove operations to one entity and persist."""
        values = self.altered(entity, ops)
        if values:
            self.quotas[entity] = values
        else:
            self.quotas.pop(entity, None)
        self._rates.clear()  # who shares which rate may have changed
        if self.path is not None:
            self._save(self.path)

    def replace(self, entity: Entity, values: dict[str, float]) -> None:
        """Set an entity's values as read back from ZooKeeper (none: no quota)."""
        if values:
            self.quotas[entity] = dict(values)
        else:
            self.quotas.pop(entity, None)
        self._rates.clear()

    def describe(
        self, components: list[tuple[str, int, str | None]], strict: bool
    ) -> list[tuple[Entity, dict[str, float]]]:
        """The entities matching every component (DescribeClientQuotas' filter): match
        type 0 a name, 1 the default entity, 2 any entity of the type; strict: no other
        entity types than the components'."""
        types = [c[0] for c in components]
        for entity_type, match_type, _ in components:
            if types.count(entity_type) > 1:
                raise InvalidQuota(f"Duplicate {entity_type} filter component entity type")
            if match_type not in (0, 1, 2):
                raise InvalidQuota(f"Unexpected match type {match_type}")
        found = []
        for entity, values in sorted(self.quotas.items(), key=lambda kv: repr(kv[0])):
            names = dict(entity)
            if strict and set(names) != set(types):
                continue
            ok = True
            for entity_type, match_type, match in components:
                if entity_type not in names:
                    ok = False
                elif match_type == 0:
                    ok = names[entity_type] == match
                elif match_type == 1:
                    ok = names[entity_type] is None
                if not ok:
                    break
            if ok:
                found.append((entity, dict(values)))
        return found

    # --- enforcement -------------------------------------------------------------------

    def _quota_for(self, user: str, client_id: str, key: str) -> tuple[float, str, str] | None:
        """The quota that applies and the (user, client id) its rate is shared by."""
        for u, c in (
            (user, client_id),
            (user, None),
            (user, "-"),
            (None, client_id),
            (None, None),
            (None, "-"),
            ("-", client_id),
            ("-", None),
        ):
            pairs: list[tuple[str, str | None]] = []
            if u != "-":
                pairs.append((USER, u))
            if c != "-":
                pairs.append((CLIENT_ID, c))
            value = self.quotas.get(tuple(sorted(pairs)), {}).get(key)
            if value is not None:
                return value, (user if u != "-" else ""), (client_id if c != "-" else "")
        return None

    def record(self, key: str, principal: str, client_id: str, size: float, now: float) -> int:
        """Count ``size`` (bytes, or request time in percent) for the client; the throttle
        time in ms (0 when within its quota, or when no quota applies)."""
        if not self.quotas:
            return 0
        found = self._quota_for(user_of(principal), client_id, key)
        if found is None:
            return 0
        bound, user, client = found
        rate = self._rates.setdefault((key, user, client), _Rate())
        rate.record(size, now)
        observed, window_s = rate.measure(now)
        if observed <= bound:
            return 0
        return round((observed - bound) / bound * window_s * 1000)

    @property
    def request_quotas_set(self) -> bool:
        """Whether any entity has a request-rate quota (Kafka's quotasEnabled: no time
        is recorded otherwise)."""
        # Asked once per request: with no quota at all (the usual case), no generator.
        return bool(self.quotas) and any(
            REQUEST_PERCENTAGE in values for values in self.quotas.values()
        )

    def record_request_time(
        self, principal: str, client_id: str, seconds: float, now: float
    ) -> int:
        """Count ``seconds`` of handler time for the client against its request_percentage
        quota (ClientRequestQuotaManager.maybeRecordAndGetThrottleTimeMs); the throttle
        time in ms, at most one quota window."""
        if not self.request_quotas_set:
            return 0
        # nanosToPercentage: time per second of wall clock, as a percentage of one thread.
        throttle = self.record(REQUEST_PERCENTAGE, principal, client_id, seconds * 100, now)
        return min(throttle, round(WINDOW_S * 1000))

    def unrecord(self, key: str, principal: str, client_id: str, size: int, now: float) -> None:
        """Take back bytes counted for a response not sent (a throttled fetch)."""
        self.record(key, principal, client_id, -size, now)

    # --- the single-node file ---------------------------------------------------------------

    def _save(self, path: Path) -> None:
        body = [
            {"entity": [{"type": t, "name": n} for t, n in entity], "values": values}
            for entity, values in self.quotas.items()
        ]
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            json.dump({"version": 1, "quotas": body}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return
        for item in data["quotas"]:
            entity = make_entity([(e["type"], e["name"]) for e in item["entity"]])
            self.quotas[entity] = {k: float(v) for k, v in item["values"].items()}


_STATE_KEY = "kbroker.quotas"


def quota_manager(broker: BrokerState) -> QuotaManager:
    """The broker's quotas: from the data dir on a single node (loaded on first use); in
    cluster mode filled from ZooKeeper by the cluster node (kbroker.quotas_zk)."""
    found = broker.state.get(_STATE_KEY)
    if found is None:
        path = None if broker.cluster is not None else broker.data_dir / QUOTA_FILE
        found = broker.state[_STATE_KEY] = QuotaManager(path)
    return found  # type: ignore[no-any-return]

"""The cost of an ACL decision (kbroker.authz.acl.AclStore.authorize) as ACLs pile up.

Run: `.venv/bin/python bench/acl_authorize.py [--acls 10,1000,100000]`

For each count, a store holds that many ACLs: literal topic ACLs for as many principals,
a tenth of them PREFIXED, plus a wildcard and a DENY. It then times authorizations of
a topic name that has ACLs of all three kinds (the Produce / Fetch check per topic), of
a name no ACL names, and of Metadata's filter over 1,000 topics. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import time

from kbroker.authz.acl import (
    AclBinding,
    AclEntry,
    AclStore,
    Operation,
    PatternType,
    Permission,
    ResourcePattern,
    ResourceType,
)

TOPIC = ResourceType.TOPIC


def build(count: int) -> AclStore:
    store = AclStore()
    for i in range(count):
        pattern_type = PatternType.PREFIXED if i % 10 == 0 else PatternType.LITERAL
        name = f"team{i % 97}-" if pattern_type == PatternType.PREFIXED else f"team{i % 97}-t{i}"
        store.add(
            AclBinding(
                ResourcePattern(TOPIC, name, pattern_type),
                AclEntry(f"User:u{i}", "*", Operation.READ, Permission.ALLOW),
            )
        )
    store.add(
        AclBinding(
            ResourcePattern(TOPIC, "*", PatternType.LITERAL),
            AclEntry("User:ops", "*", Operation.DESCRIBE, Permission.ALLOW),
        )
    )
    store.add(
        AclBinding(
            ResourcePattern(TOPIC, "team5-t5", PatternType.LITERAL),
            AclEntry("User:u5", "10.0.0.9", Operation.READ, Permission.DENY),
        )
    )
    return store


def per_second(fn, seconds: float = 0.5) -> float:  # type: ignore[no-untyped-def]
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        n += 100
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acls", default="10,1000,100000")
    args = parser.parse_args()
    print(f"{'ACLs':>8} {'hit/s':>12} {'miss/s':>12} {'1000-topic filter':>18}")
    for count in (int(c) for c in args.acls.split(",")):
        store = build(count)
        store.authorize("User:u5", "127.0.0.1", Operation.READ, TOPIC, "team5-t5")  # index
        hit = per_second(
            lambda s=store: s.authorize("User:u5", "127.0.0.1", Operation.READ, TOPIC, "team5-t5")
        )
        miss = per_second(
            lambda s=store: s.authorize("User:x", "127.0.0.1", Operation.READ, TOPIC, "unnamed")
        )
        names = [f"team{i % 97}-t{i}" for i in range(1000)]
        start = time.perf_counter()
        for name in names:
            store.authorize("User:ops", "127.0.0.1", Operation.DESCRIBE, TOPIC, name)
        filter_ms = (time.perf_counter() - start) * 1000
        print(f"{count:>8} {hit:>12,.0f} {miss:>12,.0f} {filter_ms:>15.2f} ms")


if __name__ == "__main__":
    main()

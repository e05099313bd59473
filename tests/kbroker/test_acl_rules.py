"""Kafka's ACL rules (kbroker.authz.acl), as AclAuthorizer applies them."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbroker.authz.acl import (
    AclBinding,
    AclEntry,
    AclFilter,
    AclStore,
    InvalidAcl,
    Operation,
    PatternType,
    Permission,
    ResourcePattern,
    ResourceType,
    parse_super_users,
)

TOPIC, GROUP, CLUSTER = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
LITERAL, PREFIXED = PatternType.LITERAL, PatternType.PREFIXED
ALLOW, DENY = Permission.ALLOW, Permission.DENY
ALICE, BOB = "User:alice", "User:bob"
HOST = "10.0.0.5"


def acl(
    name: str,
    op: Operation,
    *,
    principal: str = ALICE,
    host: str = "*",
    permission: Permission = ALLOW,
    pattern: PatternType = LITERAL,
    rtype: ResourceType = TOPIC,
) -> AclBinding:
    return AclBinding(
        ResourcePattern(rtype, name, pattern), AclEntry(principal, host, op, permission)
    )


def store(*bindings: AclBinding, **kwargs: object) -> AclStore:
    s = AclStore(**kwargs)  # type: ignore[arg-type]
    for b in bindings:
        s.add(b)
    return s


def may(s: AclStore, op: Operation, name: str, principal: str = ALICE, host: str = HOST) -> bool:
    return s.authorize(principal, host, op, TOPIC, name)


def test_a_literal_allow_grants_only_its_topic_and_operation() -> None:
    s = store(acl("orders", Operation.READ))
    assert may(s, Operation.READ, "orders")
    assert not may(s, Operation.WRITE, "orders")
    assert not may(s, Operation.READ, "orders2")
    assert not may(s, Operation.READ, "orders", principal=BOB)


@pytest.mark.parametrize(
    "granted", [Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER]
)
def test_read_write_delete_alter_imply_describe(granted: Operation) -> None:
    s = store(acl("t", granted))
    assert may(s, Operation.DESCRIBE, "t")


def test_alter_configs_implies_describe_configs_but_not_the_reverse() -> None:
    assert may(store(acl("t", Operation.ALTER_CONFIGS)), Operation.DESCRIBE_CONFIGS, "t")
    assert not may(store(acl("t", Operation.DESCRIBE_CONFIGS)), Operation.ALTER_CONFIGS, "t")
    # Describe implies nothing else.
    assert not may(store(acl("t", Operation.DESCRIBE)), Operation.READ, "t")


def test_all_grants_every_operation() -> None:
    s = store(acl("t", Operation.ALL))
    for op in (Operation.READ, Operation.WRITE, Operation.DESCRIBE, Operation.ALTER_CONFIGS):
        assert may(s, op, "t")


def test_deny_overrides_allow_even_an_all() -> None:
    s = store(acl("t", Operation.ALL), acl("t", Operation.WRITE, permission=DENY))
    assert not may(s, Operation.WRITE, "t")
    assert may(s, Operation.READ, "t")


def test_a_deny_of_read_does_not_deny_the_describe_it_implies() -> None:
    # AclAuthorizer checks DENY for the operation asked only: the ALLOW of Read still
    # implies Describe although Read itself is denied.
    s = store(acl("t", Operation.READ), acl("t", Operation.READ, permission=DENY))
    assert not may(s, Operation.READ, "t")
    assert may(s, Operation.DESCRIBE, "t")
    s.add(acl("t", Operation.DESCRIBE, permission=DENY))
    assert not may(s, Operation.DESCRIBE, "t")


def test_a_prefixed_acl_grants_a_family_of_topics() -> None:
    s = store(acl("sales-", Operation.WRITE, pattern=PREFIXED))
    assert may(s, Operation.WRITE, "sales-eu")
    assert may(s, Operation.WRITE, "sales-")
    assert not may(s, Operation.WRITE, "sale")
    assert not may(s, Operation.WRITE, "marketing")


def test_a_prefixed_deny_overrides_a_literal_allow() -> None:
    s = store(
        acl("sales-eu", Operation.READ),
        acl("sales-", Operation.READ, permission=DENY, pattern=PREFIXED),
    )
    assert not may(s, Operation.READ, "sales-eu")


def test_wildcard_resource_and_wildcard_principal() -> None:
    s = store(acl("*", Operation.READ, principal="User:*"))
    assert may(s, Operation.READ, "anything", principal=BOB)
    # A literal "*" name in a PREFIXED pattern is just a prefix: it matches "*..." only.
    p = store(acl("*", Operation.READ, pattern=PREFIXED))
    assert not may(p, Operation.READ, "anything")


def test_host_must_match_or_be_the_wildcard() -> None:
    s = store(acl("t", Operation.READ, host="10.0.0.5"))
    assert may(s, Operation.READ, "t", host="10.0.0.5")
    assert not may(s, Operation.READ, "t", host="10.0.0.6")


def test_no_acl_at_all_denies_unless_allow_everyone_if_no_acl_found() -> None:
    assert not may(store(), Operation.READ, "t")
    open_store = store(allow_if_no_acls=True)
    assert may(open_store, Operation.READ, "t")
    # Once a resource has any ACL, only ACLs decide (even for other principals).
    open_store.add(acl("t", Operation.READ, principal=BOB))
    assert not may(open_store, Operation.READ, "t")
    assert may(open_store, Operation.READ, "other")


def test_super_users_may_do_anything_whatever_the_acls() -> None:
    supers = parse_super_users("User:admin; User:ops;")
    assert supers == {"User:admin", "User:ops"}
    s = store(acl("t", Operation.ALL, principal="User:admin", permission=DENY), super_users=supers)
    assert may(s, Operation.WRITE, "t", principal="User:admin")


def test_resource_types_do_not_mix() -> None:
    s = store(acl("x", Operation.READ, rtype=GROUP))
    assert s.authorize(ALICE, HOST, Operation.READ, GROUP, "x")
    assert not may(s, Operation.READ, "x")


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        (acl("other", Operation.ALTER, rtype=CLUSTER), "kafka-cluster"),
        (acl("", Operation.READ), "should not be empty"),
        (acl("t", Operation.ANY), "Invalid operation"),
        (acl("t", Operation.READ, permission=Permission.ANY), "Invalid permission"),
        (acl("t", Operation.READ, pattern=PatternType.MATCH), "Invalid pattern type"),
        (acl("t", Operation.READ, rtype=ResourceType.ANY), "Invalid resource type"),
        (acl("t", Operation.READ, principal="alice"), "Could not parse principal"),
    ],
)
def test_invalid_bindings_are_refused(binding: AclBinding, message: str) -> None:
    with pytest.raises(InvalidAcl, match=message):
        AclStore().add(binding)


def _filter(**kw: object) -> AclFilter:
    base: dict[str, object] = dict(
        resource_type=ResourceType.ANY,
        name=None,
        pattern_type=PatternType.ANY,
        principal=None,
        host=None,
        operation=Operation.ANY,
        permission=Permission.ANY,
    )
    base.update(kw)
    return AclFilter(**base)  # type: ignore[arg-type]


def test_filters_match_as_kafka_binding_filters() -> None:
    lit = acl("sales-eu", Operation.READ)
    wild = acl("*", Operation.READ)
    pre = acl("sales-", Operation.WRITE, pattern=PREFIXED)
    grp = acl("g", Operation.READ, rtype=GROUP, principal=BOB)
    s = store(lit, wild, pre, grp)
    assert s.matching(_filter()) == sorted([lit, wild, pre, grp])
    # MATCH: every pattern that applies to the named resource.
    assert set(
        s.matching(_filter(resource_type=TOPIC, name="sales-eu", pattern_type=PatternType.MATCH))
    ) == {
        lit,
        wild,
        pre,
    }
    # ANY with a name: exact name, any pattern type.
    assert s.matching(_filter(name="sales-", pattern_type=PatternType.ANY)) == [pre]
    assert s.matching(_filter(principal=BOB)) == [grp]
    assert s.matching(_filter(operation=Operation.WRITE)) == [pre]
    assert s.matching(_filter(pattern_type=PREFIXED)) == [pre]


def test_unknown_filter_elements_are_invalid() -> None:
    with pytest.raises(InvalidAcl):
        AclFilter.from_wire(2, None, 3, None, None, 99, 1).validate()


def test_remove_matching_removes_only_matches() -> None:
    keep, drop = acl("t", Operation.READ), acl("t", Operation.WRITE)
    s = store(keep, drop)
    assert s.remove_matching(_filter(operation=Operation.WRITE)) == [drop]
    assert s.bindings() == [keep]


def test_acls_survive_a_save_and_load(tmp_path: Path) -> None:
    path = tmp_path / "acls.json"
    s = store(
        acl("t", Operation.READ), acl("p-", Operation.WRITE, pattern=PREFIXED, permission=DENY)
    )
    s.save(path)
    again = AclStore()
    again.load(path)
    assert again.bindings() == s.bindings()


def test_idempotent_write_by_resource_type() -> None:
    # Kafka 3.x lets Write on some topic stand in for IdempotentWrite (KIP-679).
    s = store(acl("t", Operation.WRITE))
    assert s.may_on_some(ALICE, HOST, Operation.WRITE, TOPIC)
    assert not s.may_on_some(BOB, HOST, Operation.WRITE, TOPIC)
    s.add(acl("t", Operation.WRITE, permission=DENY))
    assert not s.may_on_some(ALICE, HOST, Operation.WRITE, TOPIC)

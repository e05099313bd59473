"""Message classes are built without dataclasses.make_dataclass (start-up time); they
must still behave exactly like slotted keyword-only dataclasses, and the lookup tables
must cover every declaration."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle

import pytest

import kbroker.wire.messages as messages
from kbroker.wire.messages import ALL, API_DECLS, DATA_DECLS, REQUESTS, RESPONSES, ProduceResponse


def test_tables_cover_every_declaration_with_the_module_attributes() -> None:
    for decl in API_DECLS + DATA_DECLS:
        cls = ALL[decl.name]
        assert getattr(messages, decl.name) is cls
        assert cls.SCHEMA is decl
        if decl.kind == "request":
            assert REQUESTS[decl.api_key] is cls and cls.API_KEY == decl.api_key
        elif decl.kind == "response":
            assert RESPONSES[decl.api_key] is cls and cls.API_KEY == decl.api_key
    request_keys = {d.api_key for d in API_DECLS if d.kind == "request"}
    response_keys = {d.api_key for d in API_DECLS if d.kind == "response"}
    assert set(REQUESTS) == request_keys == response_keys == set(RESPONSES)
    with pytest.raises(AttributeError):
        messages.NoSuchRequest  # noqa: B018


def test_defaults_equality_repr_and_keyword_only() -> None:
    part = ProduceResponse.PartitionProduceResponse
    a = part(index=1, error_code=3)
    assert (a.index, a.error_code, a.log_append_time_ms, a.error_message) == (1, 3, -1, None)
    assert a == part(index=1, error_code=3) and a != part(index=2, error_code=3)
    assert a != ProduceResponse.TopicProduceResponse()  # another class is never equal
    assert repr(a).startswith("ProduceResponse.PartitionProduceResponse(index=1, error_code=3,")
    assert repr(ProduceResponse()) == (
        "ProduceResponse(responses=[], throttle_time_ms=0, node_endpoints=[], "
        "unknown_tagged_fields={})"
    )
    with pytest.raises(TypeError):
        part(1)
    with pytest.raises(TypeError):
        part(no_such_field=1)
    with pytest.raises(TypeError):
        hash(a)  # eq=True without frozen: unhashable, as dataclasses make it
    with pytest.raises(AttributeError):
        a.no_such_field = 1  # slotted
    # Introspection (hypothesis' builds, IDEs) sees the keyword-only fields.
    params = inspect.signature(ProduceResponse.TopicProduceResponse).parameters
    assert list(params) == ["name", "partition_responses", "unknown_tagged_fields"]
    assert all(p.kind is p.KEYWORD_ONLY for p in params.values())


def test_mutable_defaults_are_fresh_per_instance() -> None:
    x, y = ProduceResponse(), ProduceResponse()
    x.responses.append(ProduceResponse.TopicProduceResponse(name="t"))
    x.unknown_tagged_fields[5] = b"\x00"
    assert y.responses == [] and y.unknown_tagged_fields == {}
    # A struct-typed field defaults to a fresh default struct.
    p, q = ProduceResponse.PartitionProduceResponse(), ProduceResponse.PartitionProduceResponse()
    assert p.current_leader == ProduceResponse.LeaderIdAndEpoch(leader_id=-1, leader_epoch=-1)
    assert p.current_leader is not q.current_leader


def test_dataclass_helpers_work_on_every_class() -> None:
    for cls in ALL.values():
        for c in [cls, *cls.STRUCTS.values()]:
            names = [f.name for f in dataclasses.fields(c)]
            assert names[-1] == "unknown_tagged_fields"
            assert tuple(names) == c.__slots__
            assert all(f.kw_only for f in dataclasses.fields(c))
            # asdict walks every field (a nested struct becomes a dict of its own).
            value = c()
            as_dict = dataclasses.asdict(value)
            assert list(as_dict) == names
            for name in names:
                field = getattr(value, name)
                expected = dataclasses.asdict(field) if dataclasses.is_dataclass(field) else field
                assert as_dict[name] == expected, (c, name)
    value = ProduceResponse(
        throttle_time_ms=7, responses=[ProduceResponse.TopicProduceResponse(name="t")]
    )
    assert dataclasses.replace(value, throttle_time_ms=1).throttle_time_ms == 1
    assert dataclasses.asdict(value)["responses"][0]["name"] == "t"
    assert pickle.loads(pickle.dumps(value)) == value
    assert copy.deepcopy(value) == value and copy.copy(value) == value

"""The replication checker's analysis on hand-made histories (no broker needed)."""

from __future__ import annotations

from compat.checker import History


def _history() -> History:
    history = History()
    for seq in range(4):
        history.sent(0, f"v{seq}".encode())
    return history


def test_a_clean_history_has_no_anomaly() -> None:
    history = _history()
    for seq in range(4):
        history.acked(0, seq, f"v{seq}".encode())
        history.read("final", 0, seq, f"v{seq}".encode())
    analysis = history.analyse()
    assert (analysis.acknowledged, analysis.read) == (4, 4)
    assert analysis.problems() == []


def test_an_acknowledged_value_never_read_is_lost() -> None:
    history = _history()
    history.acked(0, 0, b"v0")
    history.acked(0, 1, b"v1")
    history.read("final", 0, 0, b"v0")
    analysis = history.analyse()
    assert analysis.lost == 1
    assert "lost" in analysis.examples


def test_duplicates_reordering_and_offsets_going_back_are_counted() -> None:
    history = _history()
    history.read("live", 0, 0, b"v0")
    history.read("live", 0, 1, b"v2")
    history.read("live", 0, 2, b"v1")  # sent before v2, stored after it
    history.read("live", 0, 3, b"v1")  # the same value again at another offset
    history.read("live", 0, 1, b"v2")  # this consumer went back
    analysis = history.analyse()
    assert analysis.duplicated == 1
    assert analysis.reordered >= 1
    assert analysis.backwards == 1


def test_an_acknowledged_offset_holding_another_value_is_moved() -> None:
    history = _history()
    history.acked(0, 1, b"v1")
    history.read("live", 0, 1, b"v1")
    history.read("final", 0, 1, b"v3")  # a replica lost v1's place after the ack
    history.read("final", 0, 2, b"v1")
    analysis = history.analyse()
    assert analysis.moved == 1


def test_a_value_read_but_never_sent_is_unexpected_and_a_failed_one_indeterminate() -> None:
    history = _history()
    history.failed(b"v0", "NOT_ENOUGH_REPLICAS")
    history.read("final", 0, 0, b"v0")
    history.read("final", 0, 1, b"stray")
    analysis = history.analyse()
    assert analysis.indeterminate == 1
    assert analysis.unexpected == 1
    assert analysis.failed_sends == 1


def test_a_record_read_then_truncated_vanished() -> None:
    history = _history()
    history.read("live", 0, 0, b"v0")
    history.read("live", 0, 1, b"v1")  # past what the replicas kept
    history.read("final", 0, 0, b"v0")
    history.read("final", 0, 1, b"v2")
    analysis = history.analyse()
    assert analysis.vanished == 1

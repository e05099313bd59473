"""The .txnindex file format and its in-memory lookups."""

from __future__ import annotations

from kbroker.log.txnindex import (
    ENTRY_SIZE,
    AbortedTxn,
    TxnIndexes,
    decode_entries,
    encode_entry,
    index_path,
)


def test_entry_is_kafkas_34_byte_layout():
    raw = encode_entry(
        AbortedTxn(producer_id=5, first_offset=10, last_offset=20, last_stable_offset=21)
    )
    assert len(raw) == ENTRY_SIZE == 34
    assert raw[:2] == b"\x00\x00"  # version 0
    assert int.from_bytes(raw[2:10], "big") == 5
    assert int.from_bytes(raw[26:34], "big") == 21


def test_torn_last_entry_is_ignored():
    a = AbortedTxn(1, 0, 3, 4)
    b = AbortedTxn(2, 5, 9, 10)
    data = encode_entry(a) + encode_entry(b)
    assert decode_entries(data[:-1]) == [a]


def test_load_drops_entries_past_the_log_end_and_orphan_files(tmp_path):
    idx = TxnIndexes(tmp_path)
    idx.load([0], 0)
    idx.append(0, AbortedTxn(1, 0, 3, 4))
    idx.append(0, AbortedTxn(2, 5, 9, 10))
    index_path(tmp_path, 500).write_bytes(encode_entry(AbortedTxn(3, 500, 501, 502)))
    again = TxnIndexes(tmp_path)
    again.load([0], log_end_offset=8)
    assert again.all() == [AbortedTxn(1, 0, 3, 4)]
    assert not index_path(tmp_path, 500).exists()
    assert decode_entries(index_path(tmp_path, 0).read_bytes()) == [AbortedTxn(1, 0, 3, 4)]


def test_collect_returns_overlapping_aborts():
    idx = TxnIndexes.__new__(TxnIndexes)
    idx._entries, idx._lasts = [], []
    for e in (AbortedTxn(1, 0, 3, 4), AbortedTxn(2, 2, 9, 10), AbortedTxn(3, 12, 15, 16)):
        idx._entries.append(e)
        idx._lasts.append(e.last_offset)
    assert [e.producer_id for e in idx.collect(4, 12)] == [2]
    assert [e.producer_id for e in idx.collect(0, 100)] == [1, 2, 3]
    assert idx.collect(16, 100) == []


def test_entries_of_a_vanished_segment_move_to_the_segment_holding_their_marker(tmp_path):
    # Compaction may merge segments: the aborts indexed by the merged-away
    # segment's file still belong to the log.
    index_path(tmp_path, 0).write_bytes(encode_entry(AbortedTxn(1, 0, 3, 4)))
    index_path(tmp_path, 10).write_bytes(encode_entry(AbortedTxn(2, 10, 12, 13)))
    idx = TxnIndexes(tmp_path)
    idx.load([0, 20], log_end_offset=30)
    assert [e.producer_id for e in idx.all()] == [1, 2]
    assert not index_path(tmp_path, 10).exists()
    assert decode_entries(index_path(tmp_path, 0).read_bytes()) == [
        AbortedTxn(1, 0, 3, 4),
        AbortedTxn(2, 10, 12, 13),
    ]
    # Retention removed everything below 20: those aborts are gone with their data.
    idx.load([20], log_end_offset=30)
    assert idx.all() == []
    assert not index_path(tmp_path, 0).exists()

"""check_record_framing: the cheap Produce-time check of uncompressed batches.

It must accept every well-formed batch and reject, with INVALID_RECORD like the
deep walk (check_records), every batch whose records do not tile it exactly.
"""

from __future__ import annotations

import struct
from typing import Any

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.wire import records as R
from kbroker.wire.errors import InvalidRecordBatch

INVALID_RECORD = 87
_COUNT_POS = 57
_LAST_DELTA_POS = 23


def _batch(sizes: list[int]) -> bytes:
    recs = [
        R.Record(key=None if n % 3 == 0 else b"k", value=b"v" * n, timestamp=1_000 + i)
        for i, n in enumerate(sizes)
    ]
    return R.build_batch(recs)


def _forge(data: bytes, *, count: int | None = None, extra: bytes = b"", cut: int = 0) -> bytes:
    """Rewrite a batch (records count, trailing bytes, cut records bytes), fixing length and CRC."""
    out = bytearray(data[: len(data) - cut] + extra)
    struct.pack_into(">i", out, 8, len(out) - R.LOG_OVERHEAD)
    if count is not None:
        struct.pack_into(">i", out, _COUNT_POS, count)
        struct.pack_into(">i", out, _LAST_DELTA_POS, count - 1)
    struct.pack_into(">I", out, 17, crc32c.crc32c(bytes(out[21:])))
    return bytes(out)


def _both_reject(data: bytes) -> None:
    """The framing check and the deep walk both answer INVALID_RECORD."""
    with pytest.raises(InvalidRecordBatch) as cheap:
        R.check_record_framing(data)
    with pytest.raises(InvalidRecordBatch) as deep:
        R.check_records(data)
    assert cheap.value.error_code == deep.value.error_code == INVALID_RECORD


@pytest.mark.parametrize(
    "sizes", [[0], [1, 2, 3], [100] * 50, [10_000, 5], [70_000], [63, 64, 8191, 8192]]
)
def test_well_formed_batches_pass(sizes: list[int]) -> None:
    # One-, two- and three-byte length varints all follow the chain.
    data = _batch(sizes)
    R.check_record_framing(data)
    R.check_record_framing(b"\x00" * 5 + data, 5)


def test_count_above_the_records_present_is_invalid_record() -> None:
    _both_reject(_forge(_batch([10, 20, 30]), count=4))


def test_count_below_the_records_present_leaves_trailing_bytes() -> None:
    _both_reject(_forge(_batch([10, 20, 30]), count=2))


def test_trailing_garbage_after_the_last_record_is_invalid_record() -> None:
    _both_reject(_forge(_batch([10, 20]), extra=b"\x00\x01\x02"))


def test_last_record_cut_short_is_invalid_record() -> None:
    _both_reject(_forge(_batch([10, 20]), cut=4))


def test_zero_or_negative_record_length_is_invalid_record() -> None:
    data = bytearray(_batch([10]))
    for varint in (b"\x00", b"\x01", b"\x80\x00"):
        forged = (
            bytes(data[: R.RECORD_BATCH_OVERHEAD])
            + varint
            + bytes(data[R.RECORD_BATCH_OVERHEAD + 1 :])
        )
        with pytest.raises(InvalidRecordBatch) as info:
            R.check_record_framing(_forge(forged))
        assert info.value.error_code == INVALID_RECORD


def test_compressed_batches_are_left_to_the_deep_walk() -> None:
    data = R.build_batch([R.Record(key=None, value=b"x", timestamp=1)], compression=1)
    with pytest.raises(ValueError):
        R.check_record_framing(data)


def _verdicts(forged: bytes) -> tuple[bool, bool]:
    """Whether the deep walk (check_records) and the cheap framing check accept ``forged``."""
    try:
        R.check_records(forged)
    except InvalidRecordBatch:
        deep_ok = False
    else:
        deep_ok = True
    try:
        R.check_record_framing(forged)
    except InvalidRecordBatch as exc:
        assert exc.error_code == INVALID_RECORD
        cheap_ok = False
    else:
        cheap_ok = True
    return deep_ok, cheap_ok


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=9_000), min_size=1, max_size=20),
    st.integers(min_value=-3, max_value=3),
    st.integers(min_value=0, max_value=40),
    st.binary(max_size=8),
)
def test_agrees_with_the_deep_walk(
    sizes: list[int], count_change: int, cut: int, extra: bytes
) -> None:
    # Any count/length forgery the deep walk rejects for framing, the cheap check rejects too.
    data = _batch(sizes)
    count = max(1, len(sizes) + count_change)
    forged = _forge(
        data, count=count, cut=min(cut, len(data) - R.RECORD_BATCH_OVERHEAD), extra=extra
    )
    deep_ok, cheap_ok = _verdicts(forged)
    # The cheap check never rejects what the deep walk accepts...
    if deep_ok:
        assert cheap_ok
    # ...and catches each framing forgery on its own (combined ones can cancel out,
    # e.g. one more record counted and exactly one record's bytes appended).
    forgeries = (count != len(sizes)) + (cut > 0) + bool(extra)
    if forgeries == 0:
        assert cheap_ok and deep_ok
    elif forgeries == 1:
        assert not cheap_ok


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            # Record sizes with one- and two-byte length varints, and larger ones.
            st.integers(min_value=0, max_value=300) | st.integers(min_value=240, max_value=3000),
            st.integers(min_value=1, max_value=120),
        ),
        min_size=1,
        max_size=4,
    ),
    st.integers(min_value=-2, max_value=2),
    st.integers(min_value=0, max_value=3),
)
def test_runs_of_same_size_records_agree_with_the_deep_walk(
    runs: list[tuple[int, int]], count_change: int, cut: int
) -> None:
    # Long runs of one record size take the strided fast path; its verdict must be
    # the chain walk's (offset/timestamp deltas growing past 63 change sizes too).
    sizes = [size for size, repeat in runs for _ in range(repeat)]
    data = _batch(sizes)
    forged = _forge(data, count=max(1, len(sizes) + count_change), cut=cut)
    deep_ok, cheap_ok = _verdicts(forged)
    # The server hands the check a view of the request frame (runs are then measured
    # in the bytearray under it), or of a bytes frame (copied): same verdict.
    assert _framing_ok(memoryview(bytearray(b"head" + forged))[4:]) == cheap_ok
    assert _framing_ok(memoryview(b"head" + forged)[4:]) == cheap_ok
    assert _framing_ok(bytearray(forged)) == cheap_ok
    if deep_ok:
        assert cheap_ok
    if max(1, len(sizes) + count_change) == len(sizes) and not cut:
        assert cheap_ok and deep_ok
    elif (max(1, len(sizes) + count_change) == len(sizes)) != (not cut):
        assert not cheap_ok


def _framing_ok(buf: Any) -> bool:
    try:
        R.check_record_framing(buf)
    except InvalidRecordBatch:
        return False
    return True


def test_a_record_of_another_size_inside_a_run_breaks_the_chain() -> None:
    data = bytearray(_batch([10] * 100))
    # Record 50 claims to be 40 bytes longer: the chain no longer lands on the end.
    pos = R.RECORD_BATCH_OVERHEAD
    length = data[pos] >> 1
    pos += 50 * (1 + length)
    assert data[pos] == length << 1
    data[pos] = (length + 40) << 1
    _both_reject(_forge(bytes(data)))


@pytest.mark.parametrize("value_size", [100, 10_000])
def test_a_view_of_a_batch_is_checked_without_copying_it(value_size: int) -> None:
    # What the server checks is a view of the request frame; a copy of the batch
    # would be a second pass over every byte (470 KB for a producer's batch of
    # 100 B records), so what the check allocates must stay far below its size.
    import tracemalloc

    data = _batch([value_size] * (470_000 // (value_size + 10)))
    frame = memoryview(bytearray(b"head" + data))[4:]
    tracemalloc.start()
    try:
        R.check_record_framing(frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(data) // 20


@pytest.mark.parametrize("size", [100, 101, 5000, 5001])
@pytest.mark.parametrize("first_run", [2, 3, 20, 21])
def test_runs_ending_at_odd_and_even_places_are_followed_exactly(size: int, first_run: int) -> None:
    # Two-byte length varints are compared two bytes at a time; with an odd record
    # size the records at even and odd places are compared apart. Either way a run
    # that ends early (here: the next record is a byte longer, or its length varint
    # is forged one longer, so the chain overruns) must be found where it ends.
    sizes = [size] * first_run + [size + 1] * 30
    data = _batch(sizes)
    assert _framing_ok(memoryview(bytearray(data))) and _framing_ok(data)
    longer = bytearray(data)
    pos = R.RECORD_BATCH_OVERHEAD
    for index in range(first_run):
        length, after = R._read_varint(longer, pos, len(longer), 5)
        if index == first_run - 1:
            # The last record of the first run claims one byte more.
            longer[pos:after] = R._varint(length + 1)
        pos = after + length
    forged = _forge(bytes(longer))
    assert not _framing_ok(memoryview(bytearray(forged)))
    assert not _framing_ok(forged)
    _both_reject(forged)


@pytest.mark.parametrize("size", [100, 101])
@pytest.mark.parametrize("where", [1, 47, 48, 49, 95, 96, 97, 144, 145, 700, 1198])
def test_a_run_is_followed_to_its_end_wherever_it_ends(size: int, where: int) -> None:
    # A run is compared in growing chunks and bisected inside the chunk where it
    # ends: record `where` of 1,200 claims one byte more (the chain overruns), or is
    # one byte longer indeed (a well-formed batch), at and around the chunk edges.
    sizes = [size] * 1200
    assert _framing_ok(memoryview(bytearray(_batch(sizes))))
    sizes[where] += 1
    data = _batch(sizes)
    assert _framing_ok(memoryview(bytearray(data))) and _framing_ok(data)
    forged = bytearray(_batch([size] * 1200))
    pos = R.RECORD_BATCH_OVERHEAD
    for _ in range(where):
        length, after = R._read_varint(forged, pos, len(forged), 5)
        pos = after + length
    length, after = R._read_varint(forged, pos, len(forged), 5)
    forged[pos:after] = R._varint(length + 1)
    bad = _forge(bytes(forged))
    assert not _framing_ok(memoryview(bytearray(bad)))
    _both_reject(bad)


@pytest.mark.parametrize("size", [10, 100])
def test_a_view_is_judged_on_its_own_bytes_not_those_after_it(size: int) -> None:
    # A view of a frame sits in a larger buffer, and runs are measured in that buffer.
    # Here the batch lacks its last record (its count says 200) and that record
    # follows the view in the buffer: the verdict is still the view's own.
    whole = _batch([size] * 200)
    pos = R.RECORD_BATCH_OVERHEAD
    for _ in range(199):
        length, after = R._read_varint(whole, pos, len(whole), 5)
        pos = after + length
    cut = len(whole) - pos  # the last record's bytes
    short = _forge(whole, cut=cut)
    buffer = bytearray(b"head" + short + whole[len(whole) - cut :])
    view = memoryview(buffer)[4 : 4 + len(short)]
    assert not _framing_ok(view)
    _both_reject(short)
    # The same bytes with the count of records present pass, in the same buffer.
    fixed = _forge(whole, cut=cut, count=199)
    buffer = bytearray(b"head" + fixed + whole[len(whole) - cut :])
    assert _framing_ok(memoryview(buffer)[4 : 4 + len(fixed)])


def _chain_walk_ok(batch: bytes) -> bool:
    """The framing rule walked record by record, with no shortcut: count positive-length
    records from the records section; they must end exactly at the batch's end."""
    header = R.parse_header(batch)
    end = header.size
    p = R.RECORD_BATCH_OVERHEAD
    for _ in range(header.records_count):
        if p >= end:
            return False
        try:
            length, p = R._read_varint(batch, p, end, 5)
        except InvalidRecordBatch:
            return False
        if length <= 0:
            return False
        p += length
        if p > end:
            return False
    return p == end


def _with_length(batch: bytes, index: int, change: int) -> bytes:
    """The batch with record ``index``'s length varint claiming ``change`` bytes more
    (a forgery: the bytes stay where they are); length and CRC fixed up."""
    out = bytearray(batch)
    pos = R.RECORD_BATCH_OVERHEAD
    for _ in range(index):
        length, after = R._read_varint(out, pos, len(out), 5)
        pos = after + length
    length, after = R._read_varint(out, pos, len(out), 5)
    out[pos:after] = R._varint(length + change)
    return _forge(bytes(out))


@settings(max_examples=150, deadline=None)
@given(
    # Few sizes, so that runs, runs of one record, and sizes whose length varints share
    # a first byte (sizes 64 apart) all come up; some runs long enough for the chunks.
    st.lists(
        st.tuples(st.sampled_from([5, 6, 69, 100, 101, 164, 300, 8200]), st.integers(1, 700)),
        min_size=1,
        max_size=5,
    ),
    st.integers(min_value=0, max_value=10_000),
    st.sampled_from([0, 0, 1, -1, 64, -64, 2]),
    st.integers(min_value=-1, max_value=1),
)
def test_agrees_with_the_plain_chain_walk(
    runs: list[tuple[int, int]], where: int, change: int, count_change: int
) -> None:
    # The run shortcuts (strided columns in growing chunks, the look at the record
    # after a chunk, the one-chunk comparison of the batch's tail) give the verdict of
    # the record-by-record walk, on every kind of buffer the server may hand it: one
    # record's length forged (by 64: a varint with the same first byte), or the count.
    sizes = [size for size, repeat in runs for _ in range(repeat)][:2000]
    data = _batch(sizes)
    if change:
        data = _with_length(data, where % len(sizes), change)
    if count_change:
        data = _forge(data, count=max(1, len(sizes) + count_change))
    expected = _chain_walk_ok(data)
    if not change and not count_change:
        assert expected
    for buf in (
        data,
        bytearray(data),
        memoryview(bytearray(b"head" + data + b"tail"))[4 : 4 + len(data)],
        memoryview(b"head" + data)[4:],
    ):
        assert _framing_ok(buf) == expected


@pytest.mark.parametrize("where", [63, 64, 65, 575, 576, 577, 4000])
@pytest.mark.parametrize("forged", [False, True])
def test_runs_ending_at_the_chunk_edges_are_followed_exactly(where: int, forged: bool) -> None:
    # A run is compared in chunks of 64, then 512, ... records, and the record after
    # a chunk that matched is looked at before the next one: runs ending at, just
    # before and just after those edges, with the next record longer indeed or only
    # claiming to be (the chain then overruns).
    sizes = [100] * 4200
    if forged:
        data = _with_length(_batch(sizes), where, 1)
    else:
        sizes[where] += 1
        data = _batch(sizes)
    view = memoryview(bytearray(b"head" + data))[4:]
    assert _framing_ok(view) == _framing_ok(data) == (not forged) == _chain_walk_ok(data)


def _chunks_compared(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The first chunk size of every run the framing check measures from now on."""
    chunks: list[int] = []
    real = R._same_size_run

    def spy(data: Any, p: int, width: int, stride: int, limit: int, chunk: int) -> int:
        chunks.append(chunk)
        return real(data, p, width, stride, limit, chunk)

    monkeypatch.setattr(R, "_same_size_run", spy)
    return chunks


def test_the_tail_is_compared_in_one_chunk_once_per_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Sizes 100, 100, 99, 101 over and over: at every fourth record the records left
    # would fill the batch exactly if all were 100 bytes, so every run there could be
    # compared to the end of the batch at once; that one-chunk comparison is taken
    # once per batch only, so a forged batch cannot make the check quadratic.
    data = _fixed_batch([100, 100, 99, 101] * 500)
    chunks = _chunks_compared(monkeypatch)
    R.check_record_framing(memoryview(bytearray(data)))
    assert len(chunks) > 100
    assert sum(chunk > R._FIRST_CHUNK for chunk in chunks) == 1
    assert _chain_walk_ok(data)


def test_a_forged_tail_is_found_where_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tail looks uniform (its bytes fill the batch as 300 records of 100 bytes
    # would) but record 160 is one byte shorter and record 161 one longer: the
    # one-chunk comparison finds where the run ends, and the walk goes on from there;
    # forged instead (record 161 claims its own size but is a byte longer), it fails.
    sizes = [50] * 70 + [100] * 300
    sizes[160] -= 1
    sizes[161] += 1
    data = _fixed_batch(sizes)
    chunks = _chunks_compared(monkeypatch)
    assert _framing_ok(memoryview(bytearray(data))) and _chain_walk_ok(data)
    assert 300 in chunks  # the tail was compared in one chunk
    bad = _with_length(data, 161, -1)
    assert not _framing_ok(memoryview(bytearray(bad))) and not _chain_walk_ok(bad)


def _fixed_batch(sizes: list[int]) -> bytes:
    """Records of these value sizes, all with a key and one timestamp: a record's size is
    its value's, plus one byte from record 64 on (two-byte offset deltas)."""
    return R.build_batch([R.Record(key=b"k", value=b"v" * n, timestamp=1_000) for n in sizes])

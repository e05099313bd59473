"""Codec micro-benchmarks: record-batch validation and patching, Produce/Fetch codec,
and the per-call cost of the hot requests and responses across their versions.

Run standalone: ``.venv/bin/python bench/codec.py``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import functools
import sys
import time
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import crc32c  # noqa: E402

from bench._requests import produce_request  # noqa: E402
from kbroker.wire import protocol  # noqa: E402
from kbroker.wire import records as R  # noqa: E402
from kbroker.wire.messages import (  # noqa: E402
    FetchResponse,
    MetadataResponse,
)

MIB = 1024 * 1024


def best(fn: Callable[[], object], *, repeat: int = 7, number: int = 5) -> float:
    """Best-of-``repeat`` seconds per call, each timing ``number`` calls."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t) / number)
    return min(times)


def cpu_best(fn: Callable[[], object], number: int = 500) -> float:
    """Best-of-5 mean CPU seconds per call, for calls of microseconds."""
    # CPU time, not wall time: other processes on a shared machine distort wall time.
    return min(timeit.repeat(fn, number=number, repeat=5, timer=time.process_time)) / number


def mb_s(nbytes: int, seconds: float) -> str:
    """Format a throughput."""
    return f"{nbytes / seconds / 1e6:10.0f} MB/s"


def one_mib_batch(codec: int = 0, value_size: int = 1000) -> bytes:
    """A batch of about 1 MiB of records with ``value_size``-byte values."""
    n = MIB // (value_size + 20)
    recs = [
        R.Record(
            key=b"key-%06d" % i,
            value=bytes([i % 251]) * value_size,
            timestamp=1_700_000_000_000 + i,
        )
        for i in range(n)
    ]
    return R.build_batch(recs, compression=codec, producer_id=1, producer_epoch=0, base_sequence=0)


def bench_records() -> None:
    """Validation, patching and deep-walk throughput on a 1 MiB batch."""
    batch = one_mib_batch()
    n = len(batch)
    buf = bytearray(batch)
    mv = memoryview(buf)
    print(f"record batch: {n} bytes, {R.parse_header(batch).records_count} records")
    t = best(lambda: crc32c.crc32c(mv[21:]))
    print(f"  raw crc32c                          {mb_s(n, t)}  ({t * 1e6:8.1f} us)")
    t = best(lambda: R.validate_batch(buf))
    print(f"  validate_batch                      {mb_s(n, t)}  ({t * 1e6:8.1f} us)")

    def validate_and_patch() -> None:
        R.validate_batch(buf)
        R.set_base_offset(buf, 0, 123_456)
        R.set_partition_leader_epoch(buf, 0, 7)

    t = best(validate_and_patch)
    print(f"  validate + set offset/epoch         {mb_s(n, t)}  ({t * 1e6:8.1f} us)")
    t = best(lambda: R.set_log_append_time(buf, 0, 1_700_000_000_999))
    print(f"  set_log_append_time (CRC again)     {mb_s(n, t)}  ({t * 1e6:8.1f} us)")
    t = best(lambda: R.check_records(buf), repeat=3, number=1)
    print(f"  check_records (deep walk)           {mb_s(n, t)}  ({t * 1e3:8.1f} ms)")
    for codec, name in ((1, "gzip"), (2, "snappy"), (3, "lz4"), (4, "zstd")):
        cb = one_mib_batch(codec)
        t = best(functools.partial(R.check_records, cb), repeat=3, number=1)
        print(
            f"  check_records {name:6} ({len(cb):7} B)   {mb_s(n, t)} uncompressed ({t * 1e3:6.1f} ms)"
        )


def bench_protocol() -> None:
    """Produce request decode/encode and Fetch response encode/decode with 1 MiB of batches."""
    pv = protocol.SUPPORTED[0][1]
    fv = protocol.SUPPORTED[1][1]
    batch = one_mib_batch()
    req = produce_request("bench", [batch])
    frame = protocol.encode_request(0, pv, 1, "bench", req)
    payload = frame[4:]
    print(f"Produce v{pv} request, 1 partition, {len(payload)} bytes:")
    t = best(lambda: protocol.decode_request(payload))
    print(f"  decode_request                      {mb_s(len(payload), t)}  ({t * 1e6:8.1f} us)")
    t = best(lambda: protocol.encode_request(0, pv, 1, "bench", req))
    print(f"  encode_request                      {mb_s(len(payload), t)}  ({t * 1e6:8.1f} us)")

    small = R.build_batch([R.Record(key=b"k", value=b"v" * 100, timestamp=1)])
    req100 = produce_request("bench", [small] * 100, acks=1)
    payload100 = protocol.encode_request(0, pv, 2, "bench", req100)[4:]
    t = best(lambda: protocol.decode_request(payload100), repeat=7, number=50)
    print(f"Produce v{pv} request, 100 partitions x {len(small)} B batch: decode {t * 1e6:8.1f} us")

    # Fetch response carrying 1 MiB: 16 batches of 64 KiB, as a consumer sees them.
    parts = []
    blobs = []
    for i in range(16):
        b = R.build_batch(
            [R.Record(key=b"k%d" % j, value=b"x" * 1000, timestamp=1) for j in range(64)],
            base_offset=i * 64,
        )
        blobs.append(b)
    records = b"".join(blobs)
    parts.append(
        FetchResponse.PartitionData(
            partition_index=0, high_watermark=1024, last_stable_offset=1024, records=records
        )
    )
    resp = FetchResponse(
        responses=[
            FetchResponse.FetchableTopicResponse(
                topic="bench", topic_id=uuid.uuid4(), partitions=parts
            )
        ]
    )
    out = protocol.encode_response(1, fv, 3, resp)
    print(f"Fetch v{fv} response, {len(records)} bytes of batches, frame {len(out)} bytes:")
    t = best(lambda: protocol.encode_response(1, fv, 3, resp))
    print(f"  encode_response                     {mb_s(len(out), t)}  ({t * 1e6:8.1f} us)")
    t = best(lambda: protocol.encode_response_parts(1, fv, 3, resp))
    print(f"  encode_response_parts               {mb_s(len(out), t)}  ({t * 1e6:8.1f} us)")
    t = best(lambda: protocol.decode_response(1, fv, out[4:]))
    print(f"  decode_response                     {mb_s(len(out), t)}  ({t * 1e6:8.1f} us)")


def bench_versions() -> None:
    """Per-call CPU cost of many-partition requests and responses at the versions clients use."""
    req = produce_request("bench", [b"x" * 200] * 100)
    for v in (7, 9, 11):
        frame = protocol.encode_request(0, v, 7, "cli", req)[4:]
        t = cpu_best(lambda f=frame: protocol.decode_request(f))
        print(f"decode_request Produce v{v}, 100 partitions: {t * 1e6:7.1f} us")
    resp = FetchResponse(
        responses=[
            FetchResponse.FetchableTopicResponse(
                topic="bench",
                partitions=[
                    FetchResponse.PartitionData(
                        partition_index=i, high_watermark=10, records=b"x" * 300
                    )
                    for i in range(100)
                ],
            )
        ]
    )
    for v in (11, 12, 16):
        t = cpu_best(lambda v=v: protocol.encode_response(1, v, 7, resp))
        print(f"encode_response Fetch v{v}, 100 partitions: {t * 1e6:7.1f} us")
    meta = MetadataResponse(
        topics=[
            MetadataResponse.MetadataResponseTopic(
                name=f"topic-{i}",
                partitions=[
                    MetadataResponse.MetadataResponsePartition(
                        partition_index=p, replica_nodes=[1], isr_nodes=[1]
                    )
                    for p in range(10)
                ],
            )
            for i in range(50)
        ]
    )
    t = cpu_best(lambda: protocol.encode_response(3, 12, 7, meta), number=100)
    print(f"encode_response Metadata v12, 50 topics x 10 partitions: {t * 1e6:7.1f} us")
    small = protocol.encode_request(18, 3, 1, "c", protocol.request_class(18)())[4:]
    t = cpu_best(lambda: protocol.decode_request(small), number=5000)
    print(f"decode_request ApiVersions v3: {t * 1e6:7.1f} us")


def bench_frames() -> None:
    """FrameDecoder throughput: 1 MiB frames fed in 64 KiB socket-sized chunks."""
    from kbroker.wire.frames import FrameDecoder, frame

    stream = frame(b"x" * MIB) * 16

    def run() -> None:
        dec = FrameDecoder()
        for i in range(0, len(stream), 65536):
            dec.feed(stream[i : i + 65536])
            while dec.next_frame() is not None:
                pass

    t = best(run, repeat=5, number=1)
    print(f"FrameDecoder, 16 x 1 MiB in 64 KiB chunks {mb_s(len(stream), t)}")


def main() -> None:
    """Print all figures."""
    print(f"python {sys.version.split()[0]}, crc32c hardware={crc32c.hardware_based}")
    bench_frames()
    bench_records()
    bench_protocol()
    bench_versions()


if __name__ == "__main__":
    main()

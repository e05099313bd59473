"""A Jepsen-style checker for produce/consume histories against a replicated cluster.

Jepsen's Kafka analyses (and its "queue" workloads) record what every client was told and
compare it with what can be read back afterwards. This module does the bookkeeping and
the analysis; the scenarios (compat/replication_scenarios.py) drive real clients.

- ``History.sent(partition, value)``: a producer handed ``value`` to its client library;
- ``History.acked(partition, offset, value)``: the delivery report acknowledged it there;
- ``History.failed(value, error)``: the delivery report gave up on it (an error the
  application saw: it may or may not have been written, Jepsen's "indeterminate");
- ``History.read(reader, partition, offset, value)``: a consumer (``reader`` names one
  consumer's poll stream) returned that record, in the order it returned them.

``History.analyse()`` answers, for the whole history:

- acknowledged / read: how many distinct values were acknowledged / read;
- lost: acknowledged values that no consumer read (the failure acks=all rules out);
- duplicated: values read at more than one offset (0 with an idempotent producer);
- moved: acknowledged values read at another offset than the one acknowledged, or an
  acknowledged offset holding another value (a replica diverged after the ack);
- reordered: per partition, values of the producer's send order read out of that order
  (an idempotent producer keeps its order across retries);
- backwards: a consumer's poll stream returning an offset not after the previous one of
  the same partition (a consumer must never see offsets go back);
- unexpected: values read that were never sent;
- vanished: records a consumer read that the final read-back (reader ``"final"``) does
  not hold at that offset: a consumer saw something later truncated, which the high
  watermark exists to prevent;
- indeterminate: values whose send failed and that were read anyway (allowed: a failed
  delivery report does not mean the record is absent).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field


@dataclass
class Analysis:
    """What ``History.analyse`` found; every count but the first four should be 0."""

    acknowledged: int = 0
    read: int = 0
    failed_sends: int = 0
    indeterminate: int = 0
    lost: int = 0
    duplicated: int = 0
    moved: int = 0
    reordered: int = 0
    backwards: int = 0
    unexpected: int = 0
    vanished: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def figures(self) -> dict[str, int]:
        """The counts alone (for the results table)."""
        out = asdict(self)
        out.pop("examples")
        return out

    def problems(self) -> list[str]:
        """One line per non-zero anomaly count, with a few examples."""
        lines = []
        for name in (
            "lost",
            "duplicated",
            "moved",
            "reordered",
            "backwards",
            "unexpected",
            "vanished",
        ):
            count = getattr(self, name)
            if count:
                lines.append(f"{name}: {count} (e.g. {self.examples.get(name, [])[:5]})")
        return lines


class History:
    """Thread-safe record of one scenario's sends, acknowledgements and reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.send_order: dict[bytes, tuple[int, int]] = {}  # value -> (partition, sequence)
        self._next_seq: Counter[int] = Counter()
        self.acks: dict[bytes, tuple[int, int]] = {}  # value -> (partition, offset)
        self.ack_times: dict[int, list[float]] = defaultdict(list)  # partition -> ack times
        self.failures: dict[bytes, str] = {}
        self.reads: dict[str, list[tuple[int, int, bytes]]] = defaultdict(list)

    # -- recording ------------------------------------------------------------------------------
    def sent(self, partition: int, value: bytes) -> None:
        """A producer handed ``value`` for ``partition`` to its client."""
        with self._lock:
            self.send_order[value] = (partition, self._next_seq[partition])
            self._next_seq[partition] += 1

    def acked(self, partition: int, offset: int, value: bytes) -> None:
        """A delivery report acknowledged ``value`` at ``partition``/``offset``."""
        with self._lock:
            self.acks[value] = (partition, offset)
            self.ack_times[partition].append(time.monotonic())

    def failed(self, value: bytes, error: str) -> None:
        """A delivery report gave up on ``value``."""
        with self._lock:
            self.failures[value] = error

    def read(self, reader: str, partition: int, offset: int, value: bytes) -> None:
        """Consumer ``reader`` returned this record (call in the order it returned them)."""
        with self._lock:
            self.reads[reader].append((partition, offset, value))

    # -- questions --------------------------------------------------------------------------------
    @property
    def acked_count(self) -> int:
        """How many values are acknowledged so far."""
        with self._lock:
            return len(self.acks)

    def first_ack_after(self, partition: int, when: float) -> float | None:
        """The first acknowledgement time on ``partition`` after ``when`` (monotonic), if any."""
        with self._lock:
            later = [t for t in self.ack_times[partition] if t > when]
        return min(later) if later else None

    def failure_kinds(self) -> Counter[str]:
        """How many sends failed with each error text."""
        with self._lock:
            return Counter(self.failures.values())

    # -- the analysis -----------------------------------------------------------------------------
    def analyse(self) -> Analysis:
        """Compare what was acknowledged with what was read (see the module docstring)."""
        with self._lock:
            acks = dict(self.acks)
            send_order = dict(self.send_order)
            failures = dict(self.failures)
            reads = {reader: list(records) for reader, records in self.reads.items()}
        result = Analysis(acknowledged=len(acks), failed_sends=len(failures))
        examples: dict[str, list[str]] = defaultdict(list)

        def note(kind: str, text: str) -> None:
            if len(examples[kind]) < 10:
                examples[kind].append(text)

        # Where each value was read (a value read twice at the same offset by two readers
        # is one placement; at two offsets it is a duplicate).
        placements: dict[bytes, set[tuple[int, int]]] = defaultdict(set)
        at_offset: dict[tuple[int, int], set[bytes]] = defaultdict(set)
        for reader, records in reads.items():
            last: dict[int, int] = {}
            for partition, offset, value in records:
                placements[value].add((partition, offset))
                at_offset[(partition, offset)].add(value)
                previous = last.get(partition)
                if previous is not None and offset <= previous:
                    result.backwards += 1
                    note("backwards", f"{reader} p{partition}: {previous} then {offset}")
                last[partition] = offset
        result.read = len(placements)
        final = set(reads.get("final", ()))
        if final:
            for reader, records in reads.items():
                for record in records:
                    if reader != "final" and record not in final:
                        result.vanished += 1
                        note("vanished", f"{reader} read {record} that is gone")
        for value, where in placements.items():
            if len(where) > 1:
                result.duplicated += 1
                note("duplicated", f"{value!r} at {sorted(where)}")
            if value not in send_order:
                result.unexpected += 1
                note("unexpected", f"{value!r} at {sorted(where)}")
            if value in failures:
                result.indeterminate += 1
        for value, (partition, offset) in acks.items():
            read_at = placements.get(value, set())
            if not read_at:
                result.lost += 1
                note("lost", f"{value!r} acked at p{partition}@{offset}")
            elif (partition, offset) not in read_at or at_offset[(partition, offset)] - {value}:
                result.moved += 1
                note(
                    "moved", f"{value!r} acked at p{partition}@{offset}, read at {sorted(read_at)}"
                )
        # Per partition, offsets in read order should carry increasing send sequences.
        by_partition: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for (partition, offset), values in at_offset.items():
            for value in values:
                if value in send_order:
                    by_partition[partition].append((offset, send_order[value][1]))
        for partition, pairs in by_partition.items():
            pairs.sort()
            for (o1, s1), (o2, s2) in zip(pairs, pairs[1:], strict=False):
                if s2 < s1:
                    result.reordered += 1
                    note("reordered", f"p{partition}: seq {s1}@{o1} before seq {s2}@{o2}")
        result.examples = dict(examples)
        return result

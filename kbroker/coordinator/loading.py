"""Loading a coordinator partition from its log without stalling the broker.

Kafka loads the groups of a ``__consumer_offsets`` partition and the transactions of
a ``__transaction_state`` partition on its scheduler when the broker becomes the
partition's leader (GroupMetadataManager.scheduleLoadGroupAndOffsets,
TransactionStateManager.loadTransactionsForTxnTopicPartition), and meanwhile answers
COORDINATOR_LOAD_IN_PROGRESS for the groups / transactional ids of that partition
(``loadingPartitions``); the other partitions, and every other request, are served.

Here the log is read in slices of at most ``SLICE_S`` of wall time, on the event
loop, yielding to the other tasks between slices: the reads interleave with the
appends other tasks make to the same logs (a transaction marker may land in a
``__consumer_offsets`` partition being loaded), which a thread could not do safely.
On first use the first slice runs at once, in the request that found the partition
unloaded: a partition small enough to be read within it (most are; an empty one
always) is served by that very request, instead of sending every client into a retry
after each restart. A larger one goes on in the background. On election, and for a
request that asks for every partition (ListGroups, ListTransactions, a transaction's
offsets: one slice each would add up), everything is read in the background, from the
moment the loader task first runs. The records
are replayed into the coordinator in one step once the whole log is read, so no
request ever sees a half-loaded partition.

A load whose partition is lost meanwhile (``cancel``) installs nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, TypeVar

import trio

__all__ = ["SLICE_S", "Loads", "PartitionLoad", "between_slices"]

logger = logging.getLogger(__name__)
R = TypeVar("R")

# Wall time one slice of reading may take before the loader lets other tasks run. A
# request needs a few scheduling steps, each of which may wait for one slice: at 2 ms,
# Metadata answered during a 100k-record load takes ~4 ms (bench/coordinator_load.py),
# and the load itself no longer than read in one step.
SLICE_S = 0.002
# What the background loader awaits between slices: a checkpoint, where the other tasks
# run (the tests hold loads there).
between_slices: Callable[[], Awaitable[None]] = trio.lowlevel.checkpoint


class PartitionLoad(Generic[R]):
    """Reading one coordinator partition (or a single node's whole internal topic):
    ``records`` read slice by slice, then ``install(records)`` once all are read,
    unless the load was cancelled first. ``failed`` hears a read that raised (the
    partition is then neither loaded nor loading: the next request starts again)."""

    def __init__(
        self,
        what: str,
        records: Iterator[R],
        install: Callable[[list[R]], None],
        failed: Callable[[], None],
    ) -> None:
        self.what = what
        self._records = records
        self._install = install
        self._failed = failed
        self._read: list[R] = []
        self.cancelled = False
        self.done = False
        self._scope = trio.CancelScope()

    def cancel(self) -> None:
        """The partition was lost (or its coordinator dropped): stop, install nothing."""
        self.cancelled = True
        self._scope.cancel()

    def start(self, *, first_slice_here: bool = True) -> bool:
        """Start reading; whether the load is over already (installed, or failed). With
        ``first_slice_here`` the first slice is read by the caller, else everything is
        read by the background task (a leadership change gaining many partitions at
        once must not read a slice of each before it returns)."""
        if first_slice_here and self._slice():
            return True
        try:
            trio.lowlevel.spawn_system_task(self._run, first_slice_here, name=f"load {self.what}")
        except RuntimeError:
            # Outside a Trio run (tools, tests): nothing else to serve meanwhile.
            while not self._slice():
                pass
        return self.done

    async def _run(self, sliced: bool) -> None:
        """The background part: ``sliced`` when the caller read the first slice already
        (the other tasks run before the next one)."""
        with self._scope:
            if sliced:
                await between_slices()
            while not self._slice():
                await between_slices()

    def _slice(self) -> bool:
        """Read records for at most SLICE_S; at the end install them (no yield between
        the last read and the install, so nothing appended meanwhile is missed). Whether
        the load is over."""
        if self.cancelled:
            return True
        until = time.perf_counter() + SLICE_S
        try:
            for record in self._records:
                self._read.append(record)
                if time.perf_counter() >= until:
                    return False
        except Exception:
            logger.exception("loading %s failed", self.what)
            self.done = True
            self._failed()
            return True
        self.done = True
        try:
            self._install(self._read)
        except Exception:  # a background task must not raise: that would end the broker
            logger.exception("installing %s failed", self.what)
            self._failed()
        return True


class Loads(Generic[R]):
    """The loads under way of one kind of coordinator, by partition (None: a single
    node's whole topic): at most one each, and only the current one installs."""

    def __init__(self) -> None:
        self._by_index: dict[int | None, PartitionLoad[R]] = {}

    def __contains__(self, index: int | None) -> bool:
        return index in self._by_index

    def __bool__(self) -> bool:
        return bool(self._by_index)

    def start(
        self,
        index: int | None,
        what: str,
        records: Iterator[R],
        install: Callable[[list[R]], None],
        *,
        first_slice_here: bool,
    ) -> None:
        """Load partition ``index``: ``install(records read)`` once all are read, unless
        ``cancel`` came first (``PartitionLoad.start`` for ``first_slice_here``)."""

        def installed(read: list[R]) -> None:
            if self._by_index.get(index) is not load:
                return  # cancelled meanwhile: a newer load (or none) is the partition's
            del self._by_index[index]
            install(read)

        def failed() -> None:
            if self._by_index.get(index) is load:
                del self._by_index[index]

        load = self._by_index[index] = PartitionLoad(what, records, installed, failed)
        load.start(first_slice_here=first_slice_here)

    def cancel(self, index: int | None) -> bool:
        """Partition ``index`` was lost: its load, if one is under way, installs nothing.
        Whether one was."""
        load = self._by_index.pop(index, None)
        if load is not None:
            load.cancel()
        return load is not None

    def cancel_all(self) -> bool:
        """Every load under way installs nothing; whether there was one."""
        loads = list(self._by_index.values())
        self._by_index.clear()
        for load in loads:
            load.cancel()
        return bool(loads)

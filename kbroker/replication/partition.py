"""ReplicatedPartition: one partition's replication state, as Kafka's ``Partition``.

How it works: every replica of a partition holds one. The controller's
LeaderAndIsr makes it leader (``make_leader``) or follower (``make_follower``)
with a leader epoch, the replica list and the ISR.

On the leader:
- each follower's fetch reports how far its log goes (``on_follower_fetch``,
  Kafka's ``updateFollowerFetchState``): its log end offset (LEO) is the fetch
  offset, and it was "caught up" at the time of a fetch that reached the
  leader's LEO (or the LEO the leader had at the follower's previous fetch);
- the high watermark (HW) is the smallest LEO over the ISR, the leader's own
  included; it only ever moves forward while this replica leads, and is stored
  in the log so reads stop there (``PartitionLog.update_high_watermark``);
- a follower outside the ISR whose LEO reaches the HW, and the start of the
  current leader epoch, joins it (``maybeExpandIsr``); a follower in the ISR
  that has not been caught up for ``replica.lag.time.max.ms`` leaves it
  (``maybe_shrink_isr``, run periodically). Each change goes through the
  injected ``on_isr_change(new_isr)``: returning False refuses it and the ISR
  stays as it was; returning ``ISR_CHANGE_PENDING`` says it is being persisted
  (cluster mode writes it to ZooKeeper in the background) and
  ``complete_isr_change(new_isr, committed)`` finishes it. Until then, as in
  Kafka's Partition (KIP-497's "maximal ISR"), the high watermark waits for the
  old and the new ISR members alike, so a shrink that ZooKeeper refuses never
  let the HW pass a replica the controller may still elect; no other change
  starts meanwhile;
- acks=all: a Produce checks ``check_enough_replicas`` before appending
  (NOT_ENOUGH_REPLICAS when the ISR is smaller than min.insync.replicas) and
  then ``wait_for_acks(required_offset, timeout)``, done when the HW reaches the
  offset after its batch (NOT_ENOUGH_REPLICAS_AFTER_APPEND if by then the ISR
  shrank below min.insync.replicas), REQUEST_TIMED_OUT when the time runs out
  (Kafka's ``checkEnoughReplicasReachOffset`` and ``DelayedProduce``).

On a follower the fetcher appends the leader's batches and sets the HW to
min(leader's HW, own LEO) from each fetch response (``update_follower_high_watermark``).

A KIP-848 group coordinator's own writes are acks=1 and wait only for the HW
(``wait_for_high_watermark``), not for min.insync.replicas.

Everything but the waits is synchronous; time comes from the injected
``clock`` (seconds; trio's clock by default, so tests drive it with MockClock).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import trio

from kbroker.errors import KafkaApiError
from kbroker.log import PartitionLog
from kbroker.wire.errors import ErrorCode

logger = logging.getLogger(__name__)

ISR_CHANGE_PENDING = "pending"
IsrChange = Callable[[list[int]], "bool | str | None"]


@dataclass(slots=True)
class FollowerState:
    """What the leader knows of one follower (Kafka's ``ReplicaState``)."""

    log_end_offset: int = -1  # -1: unknown until its first fetch under this leader
    log_start_offset: int = -1
    last_caught_up_ms: int = 0
    last_fetch_ms: int = 0
    last_fetch_leader_leo: int = -1  # the leader's LEO at that fetch

    def is_caught_up(self, leader_leo: int, now_ms: int, max_lag_ms: int) -> bool:
        """Kafka's ``ReplicaState.isCaughtUp``."""
        return leader_leo == self.log_end_offset or now_ms - self.last_caught_up_ms <= max_lag_ms


class ReplicatedPartition:
    """Leader epoch, replicas, ISR, follower LEOs and the high watermark of one partition replica."""

    def __init__(
        self,
        log: PartitionLog,
        *,
        broker_id: int,
        replica_lag_time_max_ms: int = 30_000,
        min_insync_replicas: int = 1,
        on_isr_change: IsrChange | None = None,
        on_high_watermark_change: Callable[[], None] | None = None,
        high_watermark: int | None = None,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.log = log
        self.broker_id = broker_id
        self.replica_lag_time_max_ms = replica_lag_time_max_ms
        self.min_insync_replicas = min_insync_replicas
        self.on_isr_change = on_isr_change
        # Wakes fetches parked in a long poll (the broker's notify_append): consumers
        # read up to the HW, and followers learn it from their next fetch response.
        self.on_high_watermark_change = on_high_watermark_change
        self._clock = clock
        self.leader_id = -1
        self.leader_epoch = -1
        # A follower's view of the leader's HW (last fetch response): its offset lag.
        self.leader_high_watermark: int | None = None
        self.replicas: list[int] = []
        self.isr: list[int] = []
        self.followers: dict[int, FollowerState] = {}
        # An ISR change being persisted (ISR_CHANGE_PENDING), None when none is.
        self.pending_isr: list[int] | None = None
        # Offset where this replica's leadership began (Kafka's leaderEpochStartOffsetOpt).
        self.leader_epoch_start_offset: int | None = None
        self._changed = trio.Event()  # set (and replaced) whenever the HW or ISR changes
        if high_watermark is not None or not log.replicated:
            # Partition.createLogIfNotExists: the checkpointed HW (replication-offset-
            # checkpoint), else 0; raised again as the ISR confirms offsets.
            log.update_high_watermark(high_watermark or 0)

    # -- state ---------------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        """Whether this broker leads the partition."""
        return self.leader_id == self.broker_id

    @property
    def high_watermark(self) -> int:
        """The log's high watermark."""
        return self.log.high_watermark

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _signal(self) -> None:
        event, self._changed = self._changed, trio.Event()
        event.set()

    def make_leader(
        self, *, leader_epoch: int, isr: Sequence[int], replicas: Sequence[int]
    ) -> bool:
        """Become (or stay) the leader: Kafka's ``Partition.makeLeader``. True if newly leader.

        The new epoch starts at the current LEO in the leader epoch cache, every
        follower's LEO is unknown until it fetches again, and followers in the
        ISR count as caught up now (they get replica.lag.time.max.ms to show it).
        """
        now = self._now_ms()
        was_leader = self.is_leader
        is_new_epoch = leader_epoch > self.leader_epoch
        self.leader_id = self.broker_id
        self.leader_epoch = leader_epoch
        self.replicas = list(replicas)
        self.isr = list(isr)
        # The controller's state supersedes a change of ours still in flight.
        self.pending_isr = None
        leo = self.log.log_end_offset
        if is_new_epoch or not was_leader:
            # Followers may hold batches of older epochs past this offset; the
            # epoch entry tells them where to truncate (KIP-101).
            if leader_epoch > self.log.leader_epochs.latest_epoch:
                self.log.leader_epochs.assign(leader_epoch, leo)
            self.leader_epoch_start_offset = leo
            self.followers = {
                r: FollowerState(
                    last_caught_up_ms=now if r in self.isr else 0,
                    last_fetch_ms=now,
                    last_fetch_leader_leo=leo,
                )
                for r in self.replicas
                if r != self.broker_id
            }
        else:
            for r in self.replicas:
                if r != self.broker_id:
                    self.followers.setdefault(r, FollowerState())
            for r in list(self.followers):
                if r not in self.replicas:
                    del self.followers[r]
        self._maybe_increment_hw(now)
        self._signal()
        return not was_leader

    def make_follower(
        self, *, leader_id: int, leader_epoch: int, isr: Sequence[int], replicas: Sequence[int]
    ) -> bool:
        """Follow `leader_id` (Kafka's ``Partition.makeFollower``). True if the leader changed.

        The fetcher then truncates this log by the new leader's epochs before fetching.
        """
        changed = leader_id != self.leader_id or leader_epoch != self.leader_epoch
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch
        self.replicas = list(replicas)
        self.isr = list(isr)
        self.pending_isr = None
        self.followers = {}
        self.leader_epoch_start_offset = None
        self._signal()  # producers waiting for acks learn they lost the leadership
        return changed

    # -- leader: followers' progress ------------------------------------------------------
    def on_follower_fetch(
        self, replica_id: int, fetch_offset: int, *, log_start_offset: int = -1
    ) -> None:
        """A follower fetched at `fetch_offset`: update its state, the ISR and the HW.

        Raises KafkaApiError NOT_LEADER_OR_FOLLOWER when this replica does not
        lead, and when `replica_id` is not one of the partition's replicas.
        """
        if not self.is_leader:
            raise KafkaApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        state = self.followers.get(replica_id)
        if state is None:
            # Kafka's followerReplicaOrThrow: a fetch from a broker that is not a replica.
            raise KafkaApiError(
                ErrorCode.NOT_LEADER_OR_FOLLOWER,
                f"Replica {replica_id} is not a replica of this partition",
            )
        now = self._now_ms()
        leo = self.log.log_end_offset
        if fetch_offset >= leo:
            state.last_caught_up_ms = max(state.last_caught_up_ms, now)
        elif fetch_offset >= state.last_fetch_leader_leo:
            state.last_caught_up_ms = max(state.last_caught_up_ms, state.last_fetch_ms)
        moved = fetch_offset != state.log_end_offset
        state.log_end_offset = fetch_offset
        state.log_start_offset = log_start_offset
        state.last_fetch_leader_leo = leo
        state.last_fetch_ms = now
        self._maybe_expand_isr(replica_id, state)
        if moved:
            self._maybe_increment_hw(now)

    def _maybe_expand_isr(self, replica_id: int, state: FollowerState) -> None:
        if replica_id in self.isr or self.pending_isr is not None:
            return
        start = self.leader_epoch_start_offset
        # Kafka's isFollowerInSync: at the HW, and past the start of this leader's epoch
        # (so it truncated whatever an older leader left in its log).
        if state.log_end_offset < self.high_watermark or start is None:
            return
        if state.log_end_offset < start:
            return
        logger.info(
            "Expanding ISR of %s from %s: %d caught up",
            self.log.directory.name,
            self.isr,
            replica_id,
        )
        self._change_isr([*self.isr, replica_id])

    def maybe_shrink_isr(self) -> list[int]:
        """Drop ISR followers not caught up for replica.lag.time.max.ms; returns those dropped."""
        if not self.is_leader or self.pending_isr is not None:
            return []
        now = self._now_ms()
        leo = self.log.log_end_offset
        out = []
        for r in self.isr:
            if r == self.broker_id:
                continue
            state = self.followers.get(r)
            if state is None or not state.is_caught_up(leo, now, self.replica_lag_time_max_ms):
                out.append(r)
        if out:
            logger.info(
                "Shrinking ISR of %s from %s: %s out of sync",
                self.log.directory.name,
                self.isr,
                out,
            )
            if self._change_isr([r for r in self.isr if r not in out]):
                self._maybe_increment_hw(now)
                return out
        return []

    def _change_isr(self, new_isr: list[int]) -> bool:
        answer = None if self.on_isr_change is None else self.on_isr_change(list(new_isr))
        if answer is False:
            return False
        if answer == ISR_CHANGE_PENDING:
            self.pending_isr = list(new_isr)
            return False
        self.isr = new_isr
        self._signal()
        return True

    def complete_isr_change(self, new_isr: Sequence[int], committed: bool) -> None:
        """The ISR change handed out as pending was persisted (``committed``) or refused.

        Ignored unless it is the change still pending (a LeaderAndIsr in between wins).
        """
        if self.pending_isr is None or list(new_isr) != self.pending_isr:
            return
        self.pending_isr = None
        if committed and self.is_leader:
            self.isr = list(new_isr)
            self._maybe_increment_hw(self._now_ms())
            self._signal()

    def _maybe_increment_hw(self, now_ms: int) -> bool:
        """Move the HW to the smallest LEO of the ISR (and of caught-up followers about to join).

        Kafka's maybeIncrementLeaderHW: a follower not yet in the ISR but caught up
        holds the HW back too, so that it can join without the HW ever having to wait.
        """
        if not self.is_leader:
            return False
        leo = self.log.log_end_offset
        new_hw = leo
        # While a change is pending, members of the old and of the new ISR both count.
        # (Membership tested in the lists: they hold a few replicas, and this runs on
        # every leader append, where building their union was three sets each time.)
        isr, pending = self.isr, self.pending_isr
        for r, state in self.followers.items():
            if state.log_end_offset < new_hw and (
                r in isr
                or (pending is not None and r in pending)
                or state.is_caught_up(leo, now_ms, self.replica_lag_time_max_ms)
                and r in self.replicas
                and state.log_end_offset >= 0
            ):
                new_hw = state.log_end_offset
        if new_hw > self.log.high_watermark:
            self.log.update_high_watermark(new_hw)
            self._signal()
            if self.on_high_watermark_change is not None:
                self.on_high_watermark_change()
            return True
        return False

    def on_leader_append(self) -> None:
        """The leader appended: with no other ISR member the HW moves at once."""
        self._maybe_increment_hw(self._now_ms())

    # -- follower: the leader's high watermark -----------------------------------------------
    def update_follower_high_watermark(self, leader_hw: int) -> None:
        """A fetch response's HW: a follower's is min(leader's HW, own LEO)."""
        self.leader_high_watermark = leader_hw
        new = min(leader_hw, self.log.log_end_offset)
        if new != self.log.high_watermark:
            self.log.update_high_watermark(new)
            self._signal()
            if self.on_high_watermark_change is not None:
                self.on_high_watermark_change()

    # -- acks=all ---------------------------------------------------------------------------
    def check_enough_replicas(self, min_insync_replicas: int | None = None) -> None:
        """Before an acks=all append: NOT_ENOUGH_REPLICAS when the ISR is below min.insync.replicas.

        `min_insync_replicas` is the topic's current setting (default: the one given
        at construction).
        """
        if not self.is_leader:
            raise KafkaApiError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        min_isr = self.min_insync_replicas if min_insync_replicas is None else min_insync_replicas
        if len(self.isr) < min_isr:
            raise KafkaApiError(
                ErrorCode.NOT_ENOUGH_REPLICAS,
                f"The size of the current ISR {self.isr} is insufficient to satisfy the "
                f"min.isr requirement of {min_isr} for partition {self.log.directory.name}",
            )

    def ack_status(
        self, required_offset: int, min_insync_replicas: int | None = None
    ) -> tuple[bool, ErrorCode]:
        """Kafka's checkEnoughReplicasReachOffset: (done, error) for an append ending before `required_offset`."""
        if not self.is_leader:
            return True, ErrorCode.NOT_LEADER_OR_FOLLOWER
        min_isr = self.min_insync_replicas if min_insync_replicas is None else min_insync_replicas
        if self.high_watermark >= required_offset:
            if len(self.isr) >= min_isr:
                return True, ErrorCode.NONE
            return True, ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        return False, ErrorCode.NONE

    async def wait_for_acks(
        self, required_offset: int, timeout_s: float, *, min_insync_replicas: int | None = None
    ) -> ErrorCode:
        """Wait until every ISR member has the offsets below `required_offset` (acks=all).

        Returns NONE, NOT_ENOUGH_REPLICAS_AFTER_APPEND, NOT_LEADER_OR_FOLLOWER, or
        REQUEST_TIMED_OUT when `timeout_s` runs out first (DelayedProduce).
        """
        with trio.move_on_after(max(0.0, timeout_s)):
            while True:
                done, error = self.ack_status(required_offset, min_insync_replicas)
                if done:
                    return error
                await self._changed.wait()
        done, error = self.ack_status(required_offset, min_insync_replicas)
        return error if done else ErrorCode.REQUEST_TIMED_OUT

    async def wait_for_high_watermark(self, required_offset: int, timeout_s: float) -> ErrorCode:
        """Wait until the HW reaches `required_offset`, however small the ISR: an acks=1
        append whose writer still waits for it to be committed. Kafka's new group
        coordinator appends so (CoordinatorPartitionWriter.append: requiredAcks=1, origin
        COORDINATOR, which Partition.appendRecordsToLeader checks against
        min.insync.replicas only for acks=-1) and completes the operation once the HW
        passes it (CoordinatorRuntime's HighWatermarkListener).

        Returns NONE, NOT_LEADER_OR_FOLLOWER, or REQUEST_TIMED_OUT when `timeout_s` runs
        out first (the runtime's OperationTimeout).
        """
        return await self.wait_for_acks(required_offset, timeout_s, min_insync_replicas=0)


async def run_isr_expiration(
    partitions: Callable[[], Iterable[ReplicatedPartition]],
    *,
    replica_lag_time_max_ms: int,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Check every led partition's ISR each replica.lag.time.max.ms / 2 (ReplicaManager's isr-expiration)."""
    task_status.started()
    while True:
        await trio.sleep(replica_lag_time_max_ms / 2000)
        for partition in partitions():
            partition.maybe_shrink_isr()

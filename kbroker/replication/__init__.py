"""Replication: per-partition leader/follower state and the follower's fetcher (issue 15).

``partition.ReplicatedPartition`` is Kafka's ``Partition`` (leader epoch, ISR,
follower log end offsets, high watermark, acks=all); ``fetcher`` copies a
leader's batches into a follower's log with Kafka's own Fetch and
OffsetForLeaderEpoch requests; ``checkpoints`` reads and writes the data
directory's ``replication-offset-checkpoint`` and ``recovery-point-offset-checkpoint``.

How a broker uses them (Kafka's ReplicaManager.becomeLeaderOrFollower):

- Each hosted partition gets ``partition.replica = ReplicatedPartition(partition.log,
  broker_id=..., replica_lag_time_max_ms=..., min_insync_replicas=...,
  on_isr_change=..., on_high_watermark_change=broker.notify_append,
  high_watermark=broker.offset_checkpoints.high_watermarks().get((topic, index)))``
  when it is first hosted. ``on_isr_change(new_isr)`` persists the ISR (ZooKeeper's
  partition state with the controller-epoch checks); returning False refuses it, and
  ``ISR_CHANGE_PENDING`` defers it until ``complete_isr_change(new_isr, committed)``
  (cluster mode: once the ZooKeeper write is done; the HW waits for old and new members).
- LeaderAndIsr, this broker the leader: ``fetchers.remove_fetcher_for_partitions([(t, p)])``
  then ``partition.replica.make_leader(leader_epoch=..., isr=..., replicas=...)``.
- LeaderAndIsr, another broker the leader: ``fetchers.remove_fetcher_for_partitions``,
  ``partition.replica.make_follower(leader_id=..., leader_epoch=..., isr=..., replicas=...)``,
  then ``fetchers.add_fetcher_for_partitions([(partition, leader_id, (host, port), leader_epoch)])``
  (the fetcher truncates by leader epochs before it fetches).
- StopReplica: ``remove_fetcher_for_partitions`` (and ``shutdown_idle_fetchers``).
- Tasks: ``ReplicaFetcherManager(broker_id=..., config=FetcherConfig.from_broker_config(config),
  on_append=broker.notify_append).run`` and ``run_isr_expiration(partitions_led,
  replica_lag_time_max_ms=...)``, both in the server's nursery.

The broker's own writes as a leader (coordinator records, transaction markers) go
through ``leader_writes.append_as_leader`` (stamped with the leader epoch), and the
coordinators answer only after ``leader_writes.wait_replicated`` (acks=all; for a
KIP-848 group's writes only the high watermark, as Kafka's new group coordinator).

With ``partition.replica`` set, the handlers already do the rest: Produce appends only
on the leader with its epoch and waits for the ISR on acks=all, Fetch serves followers
(replica id / ReplicaState) past the high watermark and consumers up to it,
OffsetForLeaderEpoch / ListOffsets / Fetch check leader epochs.
"""

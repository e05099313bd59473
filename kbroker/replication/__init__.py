"""Replication: per-partition leader/follower state and the follower's fetcher (issue 15).

``partition.ReplicatedPartition`` is Kafka's ``Partition`` (leader epoch, ISR,
follower log end offsets, high watermark, acks=all); ``fetcher`` copies a
leader's batches into a follower's log with Kafka's own Fetch and
OffsetForLeaderEpoch requests; ``checkpoints`` reads and writes the data
directory's ``replication-offset-checkpoint`` and ``recovery-point-offset-checkpoint``.
"""

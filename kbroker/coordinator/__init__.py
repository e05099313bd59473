"""The group coordinator: consumer groups and committed offsets.

``group`` is the synchronous state machine for classic groups (JoinGroup/SyncGroup)
and offsets, ``consumer_group`` the KIP-848 groups (ConsumerGroupHeartbeat),
``store`` persists them in ``__consumer_offsets``, and ``service`` is the Trio
layer that waits and fires timers.
"""

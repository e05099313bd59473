"""The group coordinator: consumer groups and committed offsets.

``group`` is the synchronous coordinator (Kafka's GroupMetadataManager): it routes each
group API to a classic group (``classic_group``: states, members, protocol) or a KIP-848
consumer group (``consumer_group``), and keeps their committed offsets in ``offsets``
(Kafka's OffsetMetadataManager). ``store`` persists all of it in ``__consumer_offsets``,
and ``service`` is the Trio layer that waits and fires timers.
"""

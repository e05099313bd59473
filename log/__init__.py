"""Kafka's segmented on-disk partition log.

Synchronous and free of trio; depends only on ``wire.records`` for the
record-batch format.
"""

"""Sans-I/O Kafka protocol codec.

Nothing in this package performs I/O, awaits, or imports trio or kbroker: it
turns bytes into typed messages and back. See ``wire.protocol`` for the entry
points, ``wire.records`` for record batches and ``wire.frames`` for framing.
"""

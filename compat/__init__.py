"""Real-client compatibility suite: unmodified Kafka clients against a live kbroker."""

"""kbroker: a Kafka-protocol-compatible broker on Trio."""

__version__ = "0.1.0"

__all__ = ["Broker", "Cluster", "__version__"]


def __getattr__(name: str) -> object:
    """``kbroker.Broker`` (the embeddable broker) and ``kbroker.Cluster`` (real broker
    processes and a ZooKeeper, for cluster-mode tests), imported on first use (PEP 562).

    Lazily, so that the pytest plugin and ``kbroker --help`` do not pay for the server.
    """
    if name == "Broker":
        from kbroker.embedded import Broker

        return Broker
    if name == "Cluster":
        from kbroker.cluster_runner import Cluster

        return Cluster
    raise AttributeError(f"module 'kbroker' has no attribute {name!r}")

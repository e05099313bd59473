"""Cluster mode: brokers sharing Kafka's metadata in ZooKeeper (``zookeeper.connect`` set)."""

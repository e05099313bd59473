"""Cluster mode: Kafka's ZooKeeper-mode metadata, controller and controller-to-broker requests.

Only ``kbroker.cluster.zk`` imports kazoo, and only a broker with ``zookeeper.connect``
set imports it, so a single-node broker never loads kazoo.
"""

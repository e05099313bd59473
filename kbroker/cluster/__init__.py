"""Cluster mode: Kafka's ZooKeeper-mode metadata, controller and controller-to-broker requests.

Nothing here is imported unless ``zookeeper.connect`` is set, so a single-node broker
never loads kazoo.
"""

"""Authorization: Kafka's ACL model (``acl``) and the checks handlers make (``checks``).

Switched on by ``authorizer.class.name`` naming either of Kafka's authorizers; with none
configured every request is allowed, as on a Kafka broker without an authorizer.
"""

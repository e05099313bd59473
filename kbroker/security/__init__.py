"""Kafka's security model for kbroker's listeners: TLS and SASL.

- ``tls``: the SSLContext of an SSL / SASL_SSL listener from Kafka's ``ssl.*`` settings
  (PEM key stores and trust stores) and the principal of a client certificate.
- ``jaas``: Kafka's JAAS configuration syntax (PLAIN users ``user_<name>="password"``).
- ``scram``: SCRAM credentials (salted, never the password), persisted in the data dir
  and managed with AlterUserScramCredentials / DescribeUserScramCredentials.
- ``sasl``: the SASL exchange of one connection (KIP-152 SaslAuthenticate framing and the
  legacy v0 framing of raw tokens) for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
- ``connection``: the server connection of a secured listener (TLS stream, authentication
  gate before any other request).
"""

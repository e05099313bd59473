"""The broker's HTTP listener: /metrics, /healthz, /readyz and the web console.

Off by default; ``--http HOST:PORT`` or ``kbroker.http.listener`` turns it on. It is an
ASGI app (``kbroker.http.app``) served by Hypercorn's Trio worker on the broker's own
event loop, so every page reads the broker's state directly, without locks.
"""

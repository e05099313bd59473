"""Exactly once (KIP-98): producer ids, the transaction coordinator, transactional offsets.

``producer_ids`` hands out producer ids in persisted blocks, ``coordinator`` is
the synchronous transaction state machine, ``store`` persists it in
``__transaction_state``, ``offsets`` stages TxnOffsetCommit offsets until their
transaction ends, and ``service`` ties them to the broker (markers, the
produce-path checks, timers). Per-partition producer state (sequences, open
transactions, the last stable offset, aborted transactions) lives in the log:
``log.producer_state`` and ``log.txnindex``.
"""

"""The group coordinator: classic consumer groups and committed offsets.

``group`` is the synchronous state machine, ``store`` persists it in
``__consumer_offsets``, ``service`` is the Trio layer that waits and fires timers.
"""

"""One adapter per client library: how it does what the shared compat scenarios ask.

``compat.record_scenarios`` and ``compat.group_scenarios`` say what a user observes; a module
here says how one library creates topics, produces and consumes, so a new client is one
module here and its test module is a list of the scenarios it runs.
"""

"""Settings shared by every unit test package."""

from __future__ import annotations

import os

from hypothesis import settings

# CI must not depend on the luck of the draw: there (CI=true) every property test runs a
# fixed, derandomized set of examples, so a red run is reproducible from the same commit.
# Locally each run explores new examples; a failure prints its reproduction blob.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

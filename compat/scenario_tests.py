"""A shared scenario as a test method of a client module's ``Test...`` class.

The record and exactly-once scenarios are functions of (client adapter, live broker, topic
name); which fixtures provide the first two depends on the family (``client`` or
``txn_client``; ``broker``, or a broker of the test's own for a scenario that restarts it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

Scenario = Callable[[Any, Any, str], None]


def as_test(
    scenario: Scenario, *, client: str = "client", broker: str = "broker"
) -> Callable[..., None]:
    """A test method that runs ``scenario`` on the fixtures named ``client`` and ``broker``
    and the test's ``topic_name``, documented as the scenario is.

    Bind it to a ``test_...`` name of the class: that name is the results table's row.
    """

    # pytest requests the fixtures that the test's signature names; a subclass's override may
    # call it as super().test_...(client, broker, topic_name).
    signature = inspect.Signature(
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for name in ("self", client, broker, "topic_name")
    )

    def test(*args: Any, **kwargs: Any) -> None:
        fixtures = signature.bind(*args, **kwargs).arguments
        scenario(fixtures[client], fixtures[broker], fixtures["topic_name"])

    test.__signature__ = signature  # type: ignore[attr-defined]
    test.__doc__ = scenario.__doc__
    return test

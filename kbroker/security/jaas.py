"""Kafka's JAAS configuration text, as in ``sasl.jaas.config`` (Kafka's JaasConfig parser).

``org.apache.kafka.common.security.plain.PlainLoginModule required username="admin"
password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";``

One or more login modules, each ``<class> <flag> (<key>=<value>)* ;``; a value is a bare word
or a double-quoted string. PLAIN users are the ``user_<name>`` options of the module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kbroker.config import ConfigError

_FLAGS = frozenset({"required", "requisite", "sufficient", "optional"})
_TOKEN_RE = re.compile(
    r'\s*(?:(?P<quoted>"(?:\\.|[^"\\])*")|(?P<semi>;)|(?P<eq>=)|(?P<word>[^\s=;"]+))'
)

PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"


@dataclass(slots=True)
class LoginModule:
    """One login module entry: its class name, control flag and options."""

    name: str
    flag: str
    options: dict[str, str] = field(default_factory=dict)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN_RE.match(text, position)
        if match is None or match.end() == position:
            raise ConfigError(f"invalid JAAS configuration near position {position}")
        position = match.end()
        kind = match.lastgroup
        assert kind is not None
        value = match.group(kind)
        if kind == "quoted":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
    return tokens


def parse_jaas(text: str) -> list[LoginModule]:
    """The login modules of a JAAS configuration; ConfigError (never echoing values, which
    hold passwords) if it does not parse."""
    tokens = _tokens(text)
    modules: list[LoginModule] = []
    i = 0
    while i < len(tokens):
        if i + 1 >= len(tokens) or tokens[i][0] != "word" or tokens[i + 1][0] != "word":
            raise ConfigError("invalid JAAS configuration: expected '<LoginModule> <flag>'")
        module = LoginModule(tokens[i][1], tokens[i + 1][1].lower())
        if module.flag not in _FLAGS:
            raise ConfigError(f"invalid JAAS configuration: unknown control flag {module.flag!r}")
        i += 2
        while i < len(tokens) and tokens[i][0] != "semi":
            if (
                i + 2 >= len(tokens)
                or tokens[i][0] != "word"
                or tokens[i + 1][0] != "eq"
                or tokens[i + 2][0] not in ("word", "quoted")
            ):
                raise ConfigError("invalid JAAS configuration: expected key=value options")
            module.options[tokens[i][1]] = tokens[i + 2][1]
            i += 3
        if i >= len(tokens):
            raise ConfigError("invalid JAAS configuration: a login module must end with ';'")
        i += 1
        modules.append(module)
    if not modules:
        raise ConfigError("invalid JAAS configuration: no login module")
    return modules


def plain_users(text: str) -> dict[str, str]:
    """The ``user_<name>="password"`` entries of the PlainLoginModule in ``text``."""
    users: dict[str, str] = {}
    for module in parse_jaas(text):
        if module.name == PLAIN_LOGIN_MODULE:
            for key, value in module.options.items():
                if key.startswith("user_"):
                    users[key[len("user_") :]] = value
    return users

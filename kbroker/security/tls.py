"""TLS for SSL and SASL_SSL listeners, configured with Kafka's ``ssl.*`` names.

Key material is PEM only (``ssl.keystore.type=PEM``, KIP-651): either one file at
``ssl.keystore.location`` holding the private key and the certificate chain, or the PEM
text itself in ``ssl.keystore.key`` and ``ssl.keystore.certificate.chain``. The trust store
(CA certificates that client certificates must chain to) is ``ssl.truststore.location``
or ``ssl.truststore.certificates``.
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kbroker.config import BrokerConfig, ConfigError

_TLS_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {
    "none": ssl.CERT_NONE,
    "requested": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


def server_context(config: BrokerConfig, listener: str) -> ssl.SSLContext:
    """The server SSLContext of a listener; ConfigError if its key material is missing or bad."""

    def setting(key: str) -> Any:
        return config.for_listener(listener, key)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = sorted(_TLS_VERSIONS[v] for v in setting("ssl.enabled.protocols"))
    if not versions:
        raise ConfigError(f"listener {listener}: ssl.enabled.protocols is empty")
    context.minimum_version, context.maximum_version = versions[0], versions[-1]
    ciphers = setting("ssl.cipher.suites")
    try:
        if ciphers:
            context.set_ciphers(":".join(ciphers))
        _load_key_store(context, listener, setting)
        context.verify_mode = _CLIENT_AUTH[str(setting("ssl.client.auth"))]
        if context.verify_mode != ssl.CERT_NONE:
            _load_trust_store(context, listener, setting)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"listener {listener}: cannot load its TLS key material: {exc}") from None
    return context


def _load_key_store(context: ssl.SSLContext, listener: str, setting: Callable[[str], Any]) -> None:
    get = setting
    location = get("ssl.keystore.location")
    key_password = get("ssl.key.password")
    if location:
        # One PEM file with the key and the chain: load_cert_chain reads the key from it.
        context.load_cert_chain(str(location), password=key_password)
        return
    key, chain = get("ssl.keystore.key"), get("ssl.keystore.certificate.chain")
    if not key or not chain:
        raise ConfigError(
            f"listener {listener} needs ssl.keystore.location (a PEM file with key and "
            "certificate chain) or ssl.keystore.key and ssl.keystore.certificate.chain"
        )
    # The ssl module loads keys from files only: a private temporary file, removed at once.
    fd, path = tempfile.mkstemp(prefix="kbroker-key-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(f"{key}\n{chain}\n")
        context.load_cert_chain(path, password=key_password)
    finally:
        os.unlink(path)


def _load_trust_store(
    context: ssl.SSLContext, listener: str, setting: Callable[[str], Any]
) -> None:
    get = setting
    location = get("ssl.truststore.location")
    inline = get("ssl.truststore.certificates")
    if location:
        context.load_verify_locations(cafile=str(location))
    elif inline:
        context.load_verify_locations(cadata=str(inline))
    else:
        raise ConfigError(
            f"listener {listener}: ssl.client.auth needs a trust store "
            "(ssl.truststore.location or ssl.truststore.certificates)"
        )


# --- principals ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    replacement: str
    case: str  # "", "L" or "U"


_RULE_RE = re.compile(r"\s*RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?)\s*")


def parse_mapping_rules(text: str) -> list[_Rule]:
    """Kafka's ssl.principal.mapping.rules (SslPrincipalMapper): RULE:pattern/replacement/[LU]
    entries and DEFAULT, separated by commas; the first rule that matches the whole DN wins."""
    rules: list[_Rule] = []
    rest = text.strip()
    while rest:
        if rest.startswith("DEFAULT"):
            rules.append(_Rule(None, "", ""))
            rest = rest[len("DEFAULT") :]
        else:
            match = _RULE_RE.match(rest)
            if match is None:
                raise ConfigError(f"invalid ssl.principal.mapping.rules near {rest[:40]!r}")
            # Java's $1 group references become Python's \g<1>.
            replacement = re.sub(r"\$(\d+)", r"\\g<\1>", match.group(2))
            rules.append(_Rule(re.compile(match.group(1)), replacement, match.group(3)))
            rest = rest[match.end() :]
        rest = rest.strip()
        if rest.startswith(","):
            rest = rest[1:].strip()
        elif rest:
            raise ConfigError(f"invalid ssl.principal.mapping.rules near {rest[:40]!r}")
    return rules or [_Rule(None, "", "")]


def map_principal(dn: str, rules: list[_Rule]) -> str:
    """The principal name of a certificate subject under the mapping rules."""
    for rule in rules:
        if rule.pattern is None:
            return dn
        if rule.pattern.fullmatch(dn):
            name = rule.pattern.sub(rule.replacement, dn, count=1)
            return name.lower() if rule.case == "L" else name.upper() if rule.case == "U" else name
    return dn


def subject_dn(der_certificate: bytes) -> str:
    """The subject of a DER certificate as RFC 2253 text (Java's X500Principal.getName()):
    most specific attribute first, no spaces after commas."""
    from cryptography import x509

    return x509.load_der_x509_certificate(der_certificate).subject.rfc4514_string()

"""SASL and SCRAM credential APIs: SaslHandshake (17) and SaslAuthenticate (36) outside an
authentication exchange, DescribeUserScramCredentials (50), AlterUserScramCredentials (51).

The SASL exchange itself happens in kbroker.security.connection, before requests reach
handlers; a SaslHandshake or SaslAuthenticate that gets here came on a listener without
SASL, or after the client authenticated, and Kafka answers both with ILLEGAL_SASL_STATE
(KafkaApis.handleSaslHandshakeRequest / handleSaslAuthenticateRequest).

SCRAM credentials (KIP-554) are salted by the client; the broker keeps the salt, StoredKey,
ServerKey and iteration count (kbroker.security.scram). As on Kafka, with no authorizer
anyone may create them, also over PLAINTEXT.
"""

from __future__ import annotations

import logging
from collections import Counter

from kbroker.authz.acl import Operation
from kbroker.authz.checks import allowed_cluster
from kbroker.handlers import RequestContext, handles
from kbroker.security.scram import (
    MAX_ITERATIONS,
    MECHANISMS,
    MIN_ITERATIONS,
    ScramCredential,
    scram_store,
)
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)

logger = logging.getLogger(__name__)


@handles(SaslHandshakeRequest.API_KEY, 0, 1)
async def handle_sasl_handshake(
    ctx: RequestContext, request: SaslHandshakeRequest
) -> SaslHandshakeResponse:
    return SaslHandshakeResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE, mechanisms=[])


@handles(SaslAuthenticateRequest.API_KEY, 0, 2)
async def handle_sasl_authenticate(
    ctx: RequestContext, request: SaslAuthenticateRequest
) -> SaslAuthenticateResponse:
    return SaslAuthenticateResponse(
        error_code=ErrorCode.ILLEGAL_SASL_STATE,
        error_message="SaslAuthenticate request received outside a SASL exchange",
        auth_bytes=b"",
    )


# --- DescribeUserScramCredentials ----------------------------------------------------------


@handles(DescribeUserScramCredentialsRequest.API_KEY, 0, 0)
async def handle_describe_user_scram_credentials(
    ctx: RequestContext, request: DescribeUserScramCredentialsRequest
) -> DescribeUserScramCredentialsResponse:
    if not allowed_cluster(ctx, Operation.DESCRIBE):
        # Kafka: Describe on the cluster, else the whole request fails.
        return DescribeUserScramCredentialsResponse(
            throttle_time_ms=0,
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
            error_message=None,
            results=[],
        )
    store = scram_store(ctx.broker)
    Result = DescribeUserScramCredentialsResponse.DescribeUserScramCredentialsResult
    Info = DescribeUserScramCredentialsResponse.CredentialInfo
    codes = {name: code for code, (name, _) in MECHANISMS.items()}

    def described(
        user: str,
    ) -> DescribeUserScramCredentialsResponse.DescribeUserScramCredentialsResult:
        return Result(
            user=user,
            error_code=ErrorCode.NONE,
            error_message=None,
            credential_infos=[
                Info(mechanism=codes[name], iterations=credential.iterations)
                for name, credential in sorted(store.users[user].items())
            ],
        )

    if not request.users:
        results = [described(user) for user in sorted(store.users)]
    else:
        counts = Counter(u.name for u in request.users)
        results = []
        for name in dict.fromkeys(u.name for u in request.users):
            if counts[name] > 1:
                results.append(
                    Result(
                        user=name,
                        error_code=ErrorCode.DUPLICATE_RESOURCE,
                        error_message="Cannot describe SCRAM credentials for the same user "
                        "twice in a single request",
                        credential_infos=[],
                    )
                )
            elif name not in store.users:
                results.append(
                    Result(
                        user=name,
                        error_code=ErrorCode.RESOURCE_NOT_FOUND,
                        error_message="Attempt to describe a user credential that does not exist",
                        credential_infos=[],
                    )
                )
            else:
                results.append(described(name))
    return DescribeUserScramCredentialsResponse(
        throttle_time_ms=0, error_code=ErrorCode.NONE, error_message=None, results=results
    )


# --- AlterUserScramCredentials -------------------------------------------------------------


def _problem(
    name: str,
    mechanism: int,
    iterations: int | None = None,
    salt: bytes = b"x",
    salted: bytes = b"x",
) -> tuple[int, str] | None:
    """What is wrong with one deletion or upsertion (Kafka's checks and wording), or None."""
    if not name:
        return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Username must not be empty"
    if mechanism not in MECHANISMS:
        return ErrorCode.UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism"
    if iterations is not None:
        mechanism_name = MECHANISMS[mechanism][0]
        if iterations < MIN_ITERATIONS:
            return (
                ErrorCode.UNACCEPTABLE_CREDENTIAL,
                f"Too few iterations for {mechanism_name}: {iterations} "
                f"(at least {MIN_ITERATIONS})",
            )
        if iterations > MAX_ITERATIONS:
            return (
                ErrorCode.UNACCEPTABLE_CREDENTIAL,
                f"Too many iterations for {mechanism_name}: {iterations} "
                f"(at most {MAX_ITERATIONS})",
            )
        if not salt or not salted:
            return ErrorCode.UNACCEPTABLE_CREDENTIAL, "Salt and salted password must not be empty"
    return None


@handles(AlterUserScramCredentialsRequest.API_KEY, 0, 0)
async def handle_alter_user_scram_credentials(
    ctx: RequestContext, request: AlterUserScramCredentialsRequest
) -> AlterUserScramCredentialsResponse:
    store = scram_store(ctx.broker)
    Result = AlterUserScramCredentialsResponse.AlterUserScramCredentialsResult
    errors: dict[str, tuple[int, str]] = {}
    pairs: list[tuple[str, int]] = [(d.name, d.mechanism) for d in request.deletions] + [
        (u.name, u.mechanism) for u in request.upsertions
    ]
    if not allowed_cluster(ctx, Operation.ALTER):
        # Kafka: Alter on the cluster, else every user's change fails.
        return AlterUserScramCredentialsResponse(
            throttle_time_ms=0,
            results=[
                Result(
                    user=user,
                    error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                    error_message=None,
                )
                for user in dict.fromkeys(name for name, _ in pairs)
            ],
        )
    for (name, _), count in Counter(pairs).items():
        if count > 1:
            errors.setdefault(
                name,
                (
                    ErrorCode.DUPLICATE_RESOURCE,
                    "A user credential cannot be altered twice in the same request",
                ),
            )
    for deletion in request.deletions:
        problem = _problem(deletion.name, deletion.mechanism)
        if problem is None and store.get(deletion.name, MECHANISMS[deletion.mechanism][0]) is None:
            problem = (
                ErrorCode.RESOURCE_NOT_FOUND,
                "Attempt to delete a user credential that does not exist",
            )
        if problem is not None:
            errors.setdefault(deletion.name, problem)
    for upsertion in request.upsertions:
        problem = _problem(
            upsertion.name,
            upsertion.mechanism,
            upsertion.iterations,
            upsertion.salt,
            upsertion.salted_password,
        )
        if problem is not None:
            errors.setdefault(upsertion.name, problem)
    # A user's changes apply all together or not at all.
    changes: dict[str, dict[str, ScramCredential | None]] = {}
    for deletion in request.deletions:
        if deletion.name not in errors:
            changes.setdefault(deletion.name, {})[MECHANISMS[deletion.mechanism][0]] = None
    for upsertion in request.upsertions:
        if upsertion.name not in errors:
            mechanism_name = MECHANISMS[upsertion.mechanism][0]
            changes.setdefault(upsertion.name, {})[mechanism_name] = (
                ScramCredential.from_salted_password(
                    mechanism_name,
                    bytes(upsertion.salt),
                    bytes(upsertion.salted_password),
                    upsertion.iterations,
                )
            )
    zk = getattr(ctx.broker.cluster, "zk", None)
    for user, user_changes in changes.items():
        if zk is not None:
            # Cluster mode: where Kafka keeps them, so every broker logs the user in.
            from kbroker.security import scram_zk

            await scram_zk.write_user(zk, user, user_changes)
        for mechanism_name, credential in user_changes.items():
            if credential is None:
                store.delete(user, mechanism_name)
            else:
                store.put(user, mechanism_name, credential)
    if changes and zk is None:
        store.save()
    users = dict.fromkeys(name for name, _ in pairs)
    results = [
        Result(
            user=user,
            error_code=errors[user][0] if user in errors else ErrorCode.NONE,
            error_message=errors[user][1] if user in errors else None,
        )
        for user in users
    ]
    for result in results:
        if result.error_code == ErrorCode.NONE:
            logger.info("SCRAM credentials of user %r changed by %s", result.user, ctx.principal)
    return AlterUserScramCredentialsResponse(throttle_time_ms=0, results=results)

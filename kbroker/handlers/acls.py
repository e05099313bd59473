"""CreateAcls, DescribeAcls and DeleteAcls (Kafka's AclApis).

Changing ACLs needs Alter on the cluster, listing them Describe on the cluster
(CLUSTER_AUTHORIZATION_FAILED otherwise); with no ``authorizer.class.name`` every
request answers SECURITY_DISABLED, as a Kafka broker without an authorizer does.
"""

from __future__ import annotations

from kbroker.authz.acl import (
    AclBinding,
    AclEntry,
    AclFilter,
    InvalidAcl,
    Operation,
    PatternType,
    Permission,
    ResourcePattern,
    ResourceType,
)
from kbroker.authz.checks import Authorizer, allowed_cluster, authorizer_of
from kbroker.handlers import RequestContext, handles
from kbroker.wire.errors import ErrorCode
from kbroker.wire.messages import (
    CreateAclsRequest,
    CreateAclsResponse,
    DeleteAclsRequest,
    DeleteAclsResponse,
    DescribeAclsRequest,
    DescribeAclsResponse,
)

NO_AUTHORIZER = "No Authorizer is configured on the broker"


def _filter(item: DescribeAclsRequest | DeleteAclsRequest.DeleteAclsFilter) -> AclFilter:
    return AclFilter.from_wire(
        item.resource_type_filter,
        item.resource_name_filter,
        item.pattern_type_filter,
        item.principal_filter,
        item.host_filter,
        item.operation,
        item.permission_type,
    )


def _binding(c: CreateAclsRequest.AclCreation) -> AclBinding:
    def code(kind: type[ResourceType | PatternType | Operation | Permission], value: int) -> int:
        return value if value in kind._value2member_map_ else 0

    return AclBinding(
        ResourcePattern(
            ResourceType(code(ResourceType, c.resource_type)),
            c.resource_name,
            PatternType(code(PatternType, c.resource_pattern_type)),
        ),
        AclEntry(
            c.principal,
            c.host,
            Operation(code(Operation, c.operation)),
            Permission(code(Permission, c.permission_type)),
        ),
    )


def _refusal(ctx: RequestContext, operation: Operation) -> tuple[ErrorCode, str | None] | None:
    """Why an ACL request may not go ahead, answered for each part of it (AclApis):
    CLUSTER_AUTHORIZATION_FAILED without ``operation`` on the cluster, SECURITY_DISABLED
    without an authorizer; None when it may."""
    if not allowed_cluster(ctx, operation):
        return ErrorCode.CLUSTER_AUTHORIZATION_FAILED, None
    if authorizer_of(ctx.broker) is None:
        return ErrorCode.SECURITY_DISABLED, NO_AUTHORIZER
    return None


def _invalid(acl: AclBinding | AclFilter) -> tuple[ErrorCode, str | None] | None:
    """INVALID_REQUEST and why when a binding or filter has an UNKNOWN element, else None."""
    try:
        acl.validate()
    except InvalidAcl as exc:
        return ErrorCode.INVALID_REQUEST, str(exc)
    return None


def _authorizer(ctx: RequestContext) -> Authorizer:
    """The authorizer of a request that ``_refusal`` let through."""
    authorizer = authorizer_of(ctx.broker)
    assert authorizer is not None
    return authorizer


@handles(CreateAclsRequest.API_KEY, 0, 3)
async def handle_create_acls(ctx: RequestContext, request: CreateAclsRequest) -> CreateAclsResponse:
    """Validate each creation on its own; persist the valid ones together."""
    refused = _refusal(ctx, Operation.ALTER)
    results: list[CreateAclsResponse.AclCreationResult] = []
    valid: list[AclBinding] = []
    for creation in request.creations:
        binding = _binding(creation)
        error = refused or _invalid(binding)
        if error is not None:
            results.append(
                CreateAclsResponse.AclCreationResult(error_code=error[0], error_message=error[1])
            )
            continue
        valid.append(binding)
        results.append(CreateAclsResponse.AclCreationResult(error_code=ErrorCode.NONE))
    if valid:
        await _authorizer(ctx).create(valid)
    return CreateAclsResponse(throttle_time_ms=0, results=results)


@handles(DescribeAclsRequest.API_KEY, 0, 3)
async def handle_describe_acls(
    ctx: RequestContext, request: DescribeAclsRequest
) -> DescribeAclsResponse:
    """Every ACL the filter matches, grouped by resource pattern."""
    acl_filter = _filter(request)
    error = _refusal(ctx, Operation.DESCRIBE) or _invalid(acl_filter)
    if error is not None:
        return DescribeAclsResponse(
            throttle_time_ms=0, error_code=error[0], error_message=error[1], resources=[]
        )
    authorizer = _authorizer(ctx)
    await authorizer.ensure_loaded()
    grouped: dict[ResourcePattern, list[DescribeAclsResponse.AclDescription]] = {}
    for binding in authorizer.store.matching(acl_filter):
        e = binding.entry
        grouped.setdefault(binding.pattern, []).append(
            DescribeAclsResponse.AclDescription(
                principal=e.principal,
                host=e.host,
                operation=e.operation,
                permission_type=e.permission,
            )
        )
    return DescribeAclsResponse(
        throttle_time_ms=0,
        error_code=ErrorCode.NONE,
        resources=[
            DescribeAclsResponse.DescribeAclsResource(
                resource_type=p.resource_type,
                resource_name=p.name,
                pattern_type=p.pattern_type,
                acls=acls,
            )
            for p, acls in grouped.items()
        ],
    )


@handles(DeleteAclsRequest.API_KEY, 0, 3)
async def handle_delete_acls(ctx: RequestContext, request: DeleteAclsRequest) -> DeleteAclsResponse:
    """Remove what each filter matches; each filter lists the ACLs it removed."""
    refused = _refusal(ctx, Operation.ALTER)
    results: list[DeleteAclsResponse.DeleteAclsFilterResult] = []
    for item in request.filters:
        acl_filter = _filter(item)
        error = refused or _invalid(acl_filter)
        if error is not None:
            results.append(
                DeleteAclsResponse.DeleteAclsFilterResult(
                    error_code=error[0], error_message=error[1], matching_acls=[]
                )
            )
            continue
        removed = await _authorizer(ctx).delete(acl_filter)
        results.append(
            DeleteAclsResponse.DeleteAclsFilterResult(
                error_code=ErrorCode.NONE,
                matching_acls=[
                    DeleteAclsResponse.DeleteAclsMatchingAcl(
                        error_code=ErrorCode.NONE,
                        resource_type=b.pattern.resource_type,
                        resource_name=b.pattern.name,
                        pattern_type=b.pattern.pattern_type,
                        principal=b.entry.principal,
                        host=b.entry.host,
                        operation=b.entry.operation,
                        permission_type=b.entry.permission,
                    )
                    for b in removed
                ],
            )
        )
    return DeleteAclsResponse(throttle_time_ms=0, filter_results=results)

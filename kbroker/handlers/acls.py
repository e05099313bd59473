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
from kbroker.authz.checks import allowed_cluster, authorizer_of
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


@handles(CreateAclsRequest.API_KEY, 0, 3)
async def handle_create_acls(ctx: RequestContext, request: CreateAclsRequest) -> CreateAclsResponse:
    """Validate each creation on its own; persist the valid ones together."""
    authorizer = authorizer_of(ctx.broker)

    def every(code: ErrorCode, message: str | None) -> CreateAclsResponse:
        return CreateAclsResponse(
            throttle_time_ms=0,
            results=[
                CreateAclsResponse.AclCreationResult(error_code=code, error_message=message)
                for _ in request.creations
            ],
        )

    if not allowed_cluster(ctx, Operation.ALTER):
        return every(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, None)
    if authorizer is None:
        return every(ErrorCode.SECURITY_DISABLED, NO_AUTHORIZER)
    results: list[CreateAclsResponse.AclCreationResult] = []
    valid: list[AclBinding] = []
    for creation in request.creations:
        binding = _binding(creation)
        try:
            binding.validate()
        except InvalidAcl as exc:
            results.append(
                CreateAclsResponse.AclCreationResult(
                    error_code=ErrorCode.INVALID_REQUEST, error_message=str(exc)
                )
            )
            continue
        valid.append(binding)
        results.append(CreateAclsResponse.AclCreationResult(error_code=ErrorCode.NONE))
    if valid:
        await authorizer.create(valid)
    return CreateAclsResponse(throttle_time_ms=0, results=results)


@handles(DescribeAclsRequest.API_KEY, 0, 3)
async def handle_describe_acls(
    ctx: RequestContext, request: DescribeAclsRequest
) -> DescribeAclsResponse:
    """Every ACL the filter matches, grouped by resource pattern."""
    authorizer = authorizer_of(ctx.broker)

    def failed(code: ErrorCode, message: str | None) -> DescribeAclsResponse:
        return DescribeAclsResponse(
            throttle_time_ms=0, error_code=code, error_message=message, resources=[]
        )

    if not allowed_cluster(ctx, Operation.DESCRIBE):
        return failed(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, None)
    if authorizer is None:
        return failed(ErrorCode.SECURITY_DISABLED, NO_AUTHORIZER)
    acl_filter = _filter(request)
    try:
        acl_filter.validate()
    except InvalidAcl as exc:
        return failed(ErrorCode.INVALID_REQUEST, str(exc))
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
    authorizer = authorizer_of(ctx.broker)

    def every(code: ErrorCode, message: str | None) -> DeleteAclsResponse:
        return DeleteAclsResponse(
            throttle_time_ms=0,
            filter_results=[
                DeleteAclsResponse.DeleteAclsFilterResult(
                    error_code=code, error_message=message, matching_acls=[]
                )
                for _ in request.filters
            ],
        )

    if not allowed_cluster(ctx, Operation.ALTER):
        return every(ErrorCode.CLUSTER_AUTHORIZATION_FAILED, None)
    if authorizer is None:
        return every(ErrorCode.SECURITY_DISABLED, NO_AUTHORIZER)
    results: list[DeleteAclsResponse.DeleteAclsFilterResult] = []
    for item in request.filters:
        acl_filter = _filter(item)
        try:
            acl_filter.validate()
        except InvalidAcl as exc:
            results.append(
                DeleteAclsResponse.DeleteAclsFilterResult(
                    error_code=ErrorCode.INVALID_REQUEST, error_message=str(exc), matching_acls=[]
                )
            )
            continue
        removed = await authorizer.delete(acl_filter)
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

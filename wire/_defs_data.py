"""Declarations of the headers, the consumer embedded protocol and the coordinators' internal-topic records, in kbroker's schema DSL (see wire/schema.py).

Mirrors Kafka's JSON message definitions field by field (names, types, versions,
nullable/flexible/tagged versions, defaults); tests/wire/test_conformance.py checks
them against the JSON. Data only: edit here, not in the codec.
"""

DECLARATIONS = """
RequestHeader header versions=0-2 flexible=2+
  RequestApiKey int16
  RequestApiVersion int16
  CorrelationId int32
  ClientId string v1+ nullable=1+ flexible=none ignorable

ResponseHeader header versions=0-1 flexible=1+
  CorrelationId int32

ConsumerProtocolSubscription data versions=0-3 flexible=none
  Topics []string
  UserData bytes nullable=0+ default=null
  OwnedPartitions []TopicPartition v1+ ignorable
    Topic string v1+
    Partitions []int32 v1+
  GenerationId int32 v2+ default=-1 ignorable
  RackId string v3+ nullable=3+ default=null ignorable

ConsumerProtocolAssignment data versions=0-3 flexible=none
  AssignedPartitions []TopicPartition
    Topic string
    Partitions []int32
  UserData bytes nullable=0+ default=null

ConsumerGroupCurrentMemberAssignmentKey data versions=8 flexible=none
  GroupId string v8
  MemberId string v8

ConsumerGroupCurrentMemberAssignmentValue data versions=0 flexible=0+
  MemberEpoch int32
  PreviousMemberEpoch int32
  State int8
  AssignedPartitions []TopicPartitions
  PartitionsPendingRevocation []TopicPartitions
  struct TopicPartitions v0+
    TopicId uuid
    Partitions []int32

ConsumerGroupMemberMetadataKey data versions=5 flexible=none
  GroupId string v5
  MemberId string v5

ConsumerGroupMemberMetadataValue data versions=0 flexible=0+
  InstanceId string nullable=0+
  RackId string nullable=0+
  ClientId string
  ClientHost string
  SubscribedTopicNames []string
  SubscribedTopicRegex string nullable=0+
  RebalanceTimeoutMs int32 default=-1
  ServerAssignor string nullable=0+
  ClassicMemberMetadata ClassicMemberMetadata nullable=0+ tag=0 tagged=0+ default=null
    SessionTimeoutMs int32
    SupportedProtocols []ClassicProtocol
      Name string
      Metadata bytes

ConsumerGroupMetadataKey data versions=3 flexible=none
  GroupId string v3

ConsumerGroupMetadataValue data versions=0 flexible=0+
  Epoch int32

ConsumerGroupPartitionMetadataKey data versions=4 flexible=none
  GroupId string v4

ConsumerGroupPartitionMetadataValue data versions=0 flexible=0+
  Topics []TopicMetadata
    TopicId uuid
    TopicName string
    NumPartitions int32
    PartitionMetadata []PartitionMetadata
      Partition int32
      Racks []string

ConsumerGroupTargetAssignmentMemberKey data versions=7 flexible=none
  GroupId string v7
  MemberId string v7

ConsumerGroupTargetAssignmentMemberValue data versions=0 flexible=0+
  TopicPartitions []TopicPartition
    TopicId uuid
    Partitions []int32

ConsumerGroupTargetAssignmentMetadataKey data versions=6 flexible=none
  GroupId string v6

ConsumerGroupTargetAssignmentMetadataValue data versions=0 flexible=0+
  AssignmentEpoch int32

GroupMetadataKey data versions=2 flexible=none
  group string v2

GroupMetadataValue data versions=0-4 flexible=4+
  protocolType string
  generation int32
  protocol string nullable=0+
  leader string nullable=0+
  currentStateTimestamp int64 v2+ default=-1 ignorable
  members []MemberMetadata
  struct MemberMetadata v0+
    memberId string
    groupInstanceId string v3+ nullable=3+ default=null ignorable
    clientId string
    clientHost string
    rebalanceTimeout int32 v1+ default=-1 ignorable
    sessionTimeout int32
    subscription bytes
    assignment bytes

OffsetCommitKey data versions=0-1 flexible=none
  group string v0-1
  topic string v0-1
  partition int32 v0-1

OffsetCommitValue data versions=0-4 flexible=4+
  offset int64
  leaderEpoch int32 v3+ default=-1 ignorable
  metadata string
  commitTimestamp int64
  expireTimestamp int64 v1 default=-1 ignorable

ShareGroupCurrentMemberAssignmentKey data versions=14 flexible=none
  GroupId string v14
  MemberId string v14

ShareGroupCurrentMemberAssignmentValue data versions=0 flexible=0+
  MemberEpoch int32
  PreviousMemberEpoch int32
  State int8
  AssignedPartitions []TopicPartitions
  struct TopicPartitions v0+
    TopicId uuid
    Partitions []int32

ShareGroupMemberMetadataKey data versions=10 flexible=none
  GroupId string v10
  MemberId string v10

ShareGroupMemberMetadataValue data versions=0 flexible=0+
  RackId string nullable=0+
  ClientId string
  ClientHost string
  SubscribedTopicNames []string

ShareGroupMetadataKey data versions=11 flexible=none
  GroupId string v11

ShareGroupMetadataValue data versions=0 flexible=0+
  Epoch int32

ShareGroupPartitionMetadataKey data versions=9 flexible=none
  GroupId string v9

ShareGroupPartitionMetadataValue data versions=0 flexible=0+
  Topics []TopicMetadata
    TopicId uuid
    TopicName string
    NumPartitions int32
    PartitionMetadata []PartitionMetadata
      Partition int32
      Racks []string

ShareGroupStatePartitionMetadataKey data versions=15 flexible=none
  GroupId string v15

ShareGroupStatePartitionMetadataValue data versions=0 flexible=0+
  InitializedTopics []TopicPartitionsInfo
  DeletingTopics []TopicInfo
  struct TopicPartitionsInfo v0+
    TopicId uuid
    TopicName string
    Partitions []int32
  struct TopicInfo v0+
    TopicId uuid
    TopicName string

ShareGroupTargetAssignmentMemberKey data versions=13 flexible=none
  GroupId string v13
  MemberId string v13

ShareGroupTargetAssignmentMemberValue data versions=0 flexible=0+
  TopicPartitions []TopicPartition
    TopicId uuid
    Partitions []int32

ShareGroupTargetAssignmentMetadataKey data versions=12 flexible=none
  GroupId string v12

ShareGroupTargetAssignmentMetadataValue data versions=0 flexible=0+
  AssignmentEpoch int32

TransactionLogKey data versions=0 flexible=none
  TransactionalId string v0

TransactionLogValue data versions=0-1 flexible=1+
  ProducerId int64
  PreviousProducerId int64 v1+ tag=0 tagged=1+ default=-1
  NextProducerId int64 v1+ tag=1 tagged=1+ default=-1
  ProducerEpoch int16
  TransactionTimeoutMs int32
  TransactionStatus int8
  TransactionPartitions []PartitionsSchema nullable=0+
    Topic string
    PartitionIds []int32
  TransactionLastUpdateTimestampMs int64
  TransactionStartTimestampMs int64
  ClientTransactionVersion int16 v1+ tag=2 tagged=1+ default=0
"""

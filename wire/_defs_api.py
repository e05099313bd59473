"""Declarations of the broker API requests and responses, in kbroker's schema DSL (see wire/schema.py).

Mirrors Kafka's JSON message definitions field by field (names, types, versions,
nullable/flexible/tagged versions, defaults); tests/wire/test_conformance.py checks
them against the JSON. Data only: edit here, not in the codec.
"""

DECLARATIONS = """
ProduceRequest request key=0 versions=0-11 flexible=9+
  TransactionalId string v3+ nullable=3+ default=null
  Acks int16
  TimeoutMs int32
  TopicData []TopicProduceData
    Name string
    PartitionData []PartitionProduceData
      Index int32
      Records records nullable=0+

ProduceResponse response key=0 versions=0-11 flexible=9+
  Responses []TopicProduceResponse
    Name string
    PartitionResponses []PartitionProduceResponse
      Index int32
      ErrorCode int16
      BaseOffset int64
      LogAppendTimeMs int64 v2+ default=-1 ignorable
      LogStartOffset int64 v5+ default=-1 ignorable
      RecordErrors []BatchIndexAndErrorMessage v8+ ignorable
        BatchIndex int32 v8+
        BatchIndexErrorMessage string v8+ nullable=8+ default=null
      ErrorMessage string v8+ nullable=8+ default=null ignorable
      CurrentLeader LeaderIdAndEpoch v10+ tag=0 tagged=10+
        LeaderId int32 v10+ default=-1
        LeaderEpoch int32 v10+ default=-1
  ThrottleTimeMs int32 v1+ default=0 ignorable
  NodeEndpoints []NodeEndpoint v10+ tag=0 tagged=10+
    NodeId int32 v10+
    Host string v10+
    Port int32 v10+
    Rack string v10+ nullable=10+ default=null

FetchRequest request key=1 versions=0-17 flexible=12+
  ClusterId string v12+ nullable=12+ tag=0 tagged=12+ default=null ignorable
  ReplicaId int32 v0-14 default=-1
  ReplicaState ReplicaState v15+ tag=1 tagged=15+
    ReplicaId int32 v15+ default=-1
    ReplicaEpoch int64 v15+ default=-1
  MaxWaitMs int32
  MinBytes int32
  MaxBytes int32 v3+ default=0x7fffffff ignorable
  IsolationLevel int8 v4+ default=0 ignorable
  SessionId int32 v7+ default=0 ignorable
  SessionEpoch int32 v7+ default=-1 ignorable
  Topics []FetchTopic
    Topic string v0-12 ignorable
    TopicId uuid v13+ ignorable
    Partitions []FetchPartition
      Partition int32
      CurrentLeaderEpoch int32 v9+ default=-1 ignorable
      FetchOffset int64
      LastFetchedEpoch int32 v12+ default=-1
      LogStartOffset int64 v5+ default=-1 ignorable
      PartitionMaxBytes int32
      ReplicaDirectoryId uuid v17+ tag=0 tagged=17+ ignorable
  ForgottenTopicsData []ForgottenTopic v7+
    Topic string v7-12 ignorable
    TopicId uuid v13+ ignorable
    Partitions []int32 v7+
  RackId string v11+ default="" ignorable

FetchResponse response key=1 versions=0-17 flexible=12+
  ThrottleTimeMs int32 v1+ ignorable
  ErrorCode int16 v7+ ignorable
  SessionId int32 v7+ default=0
  Responses []FetchableTopicResponse
    Topic string v0-12 ignorable
    TopicId uuid v13+ ignorable
    Partitions []PartitionData
      PartitionIndex int32
      ErrorCode int16
      HighWatermark int64
      LastStableOffset int64 v4+ default=-1 ignorable
      LogStartOffset int64 v5+ default=-1 ignorable
      DivergingEpoch EpochEndOffset v12+ tag=0 tagged=12+
        Epoch int32 v12+ default=-1
        EndOffset int64 v12+ default=-1
      CurrentLeader LeaderIdAndEpoch v12+ tag=1 tagged=12+
        LeaderId int32 v12+ default=-1
        LeaderEpoch int32 v12+ default=-1
      SnapshotId SnapshotId v12+ tag=2 tagged=12+
        EndOffset int64 default=-1
        Epoch int32 default=-1
      AbortedTransactions []AbortedTransaction v4+ nullable=4+ ignorable
        ProducerId int64 v4+
        FirstOffset int64 v4+
      PreferredReadReplica int32 v11+ default=-1
      Records records nullable=0+
  NodeEndpoints []NodeEndpoint v16+ tag=0 tagged=16+
    NodeId int32 v16+
    Host string v16+
    Port int32 v16+
    Rack string v16+ nullable=16+ default=null

ListOffsetsRequest request key=2 versions=0-10 flexible=6+
  ReplicaId int32
  IsolationLevel int8 v2+
  Topics []ListOffsetsTopic
    Name string
    Partitions []ListOffsetsPartition
      PartitionIndex int32
      CurrentLeaderEpoch int32 v4+ default=-1 ignorable
      Timestamp int64
      MaxNumOffsets int32 v0 default=1
  TimeoutMs int32 v10+ ignorable

ListOffsetsResponse response key=2 versions=0-10 flexible=6+
  ThrottleTimeMs int32 v2+ ignorable
  Topics []ListOffsetsTopicResponse
    Name string
    Partitions []ListOffsetsPartitionResponse
      PartitionIndex int32
      ErrorCode int16
      OldStyleOffsets []int64 v0
      Timestamp int64 v1+ default=-1
      Offset int64 v1+ default=-1
      LeaderEpoch int32 v4+ default=-1

MetadataRequest request key=3 versions=0-12 flexible=9+
  Topics []MetadataRequestTopic nullable=1+
    TopicId uuid v10+ ignorable
    Name string nullable=10+
  AllowAutoTopicCreation bool v4+ default=true
  IncludeClusterAuthorizedOperations bool v8-10
  IncludeTopicAuthorizedOperations bool v8+

MetadataResponse response key=3 versions=0-12 flexible=9+
  ThrottleTimeMs int32 v3+ ignorable
  Brokers []MetadataResponseBroker
    NodeId int32
    Host string
    Port int32
    Rack string v1+ nullable=1+ default=null ignorable
  ClusterId string v2+ nullable=2+ default=null ignorable
  ControllerId int32 v1+ default=-1 ignorable
  Topics []MetadataResponseTopic
    ErrorCode int16
    Name string nullable=12+
    TopicId uuid v10+ ignorable
    IsInternal bool v1+ default=false ignorable
    Partitions []MetadataResponsePartition
      ErrorCode int16
      PartitionIndex int32
      LeaderId int32
      LeaderEpoch int32 v7+ default=-1 ignorable
      ReplicaNodes []int32
      IsrNodes []int32
      OfflineReplicas []int32 v5+ ignorable
    TopicAuthorizedOperations int32 v8+ default=-2147483648
  ClusterAuthorizedOperations int32 v8-10 default=-2147483648

LeaderAndIsrRequest request key=4 versions=0-7 flexible=4+
  ControllerId int32
  isKRaftController bool v7+ default=false
  ControllerEpoch int32
  BrokerEpoch int64 v2+ default=-1 ignorable
  Type int8 v5+
  UngroupedPartitionStates []LeaderAndIsrPartitionState v0-1
  TopicStates []LeaderAndIsrTopicState v2+
    TopicName string v2+
    TopicId uuid v5+ ignorable
    PartitionStates []LeaderAndIsrPartitionState v2+
  LiveLeaders []LeaderAndIsrLiveLeader
    BrokerId int32
    HostName string
    Port int32
  struct LeaderAndIsrPartitionState v0+
    TopicName string v0-1 ignorable
    PartitionIndex int32
    ControllerEpoch int32
    Leader int32
    LeaderEpoch int32
    Isr []int32
    PartitionEpoch int32
    Replicas []int32
    AddingReplicas []int32 v3+ ignorable
    RemovingReplicas []int32 v3+ ignorable
    IsNew bool v1+ default=false ignorable
    LeaderRecoveryState int8 v6+ default=0

LeaderAndIsrResponse response key=4 versions=0-7 flexible=4+
  ErrorCode int16
  PartitionErrors []LeaderAndIsrPartitionError v0-4
  Topics []LeaderAndIsrTopicError v5+
    TopicId uuid v5+
    PartitionErrors []LeaderAndIsrPartitionError v5+
  struct LeaderAndIsrPartitionError v0+
    TopicName string v0-4 ignorable
    PartitionIndex int32
    ErrorCode int16

StopReplicaRequest request key=5 versions=0-4 flexible=2+
  ControllerId int32
  isKRaftController bool v4+ default=false
  ControllerEpoch int32
  BrokerEpoch int64 v1+ default=-1 ignorable
  DeletePartitions bool v0-2
  UngroupedPartitions []StopReplicaPartitionV0 v0
    TopicName string v0
    PartitionIndex int32 v0
  Topics []StopReplicaTopicV1 v1-2
    Name string v1-2
    PartitionIndexes []int32 v1-2
  TopicStates []StopReplicaTopicState v3+
    TopicName string v3+
    PartitionStates []StopReplicaPartitionState v3+
      PartitionIndex int32 v3+
      LeaderEpoch int32 v3+ default=-1
      DeletePartition bool v3+

StopReplicaResponse response key=5 versions=0-4 flexible=2+
  ErrorCode int16
  PartitionErrors []StopReplicaPartitionError
    TopicName string
    PartitionIndex int32
    ErrorCode int16

UpdateMetadataRequest request key=6 versions=0-8 flexible=6+
  ControllerId int32
  isKRaftController bool v8+ default=false
  Type int8 v8+ tag=0 tagged=8+ default=0
  ControllerEpoch int32
  BrokerEpoch int64 v5+ default=-1 ignorable
  UngroupedPartitionStates []UpdateMetadataPartitionState v0-4
  TopicStates []UpdateMetadataTopicState v5+
    TopicName string v5+
    TopicId uuid v7+ ignorable
    PartitionStates []UpdateMetadataPartitionState v5+
  LiveBrokers []UpdateMetadataBroker
    Id int32
    V0Host string v0 ignorable
    V0Port int32 v0 ignorable
    Endpoints []UpdateMetadataEndpoint v1+ ignorable
      Port int32 v1+
      Host string v1+
      Listener string v3+ ignorable
      SecurityProtocol int16 v1+
    Rack string v2+ nullable=0+ ignorable
  struct UpdateMetadataPartitionState v0+
    TopicName string v0-4 ignorable
    PartitionIndex int32
    ControllerEpoch int32
    Leader int32
    LeaderEpoch int32
    Isr []int32
    ZkVersion int32
    Replicas []int32
    OfflineReplicas []int32 v4+ ignorable

UpdateMetadataResponse response key=6 versions=0-8 flexible=6+
  ErrorCode int16

ControlledShutdownRequest request key=7 versions=0-3 flexible=3+
  BrokerId int32
  BrokerEpoch int64 v2+ default=-1 ignorable

ControlledShutdownResponse response key=7 versions=0-3 flexible=3+
  ErrorCode int16
  RemainingPartitions []RemainingPartition
    TopicName string
    PartitionIndex int32

OffsetCommitRequest request key=8 versions=0-9 flexible=8+
  GroupId string
  GenerationIdOrMemberEpoch int32 v1+ default=-1 ignorable
  MemberId string v1+ ignorable
  GroupInstanceId string v7+ nullable=7+ default=null
  RetentionTimeMs int64 v2-4 default=-1 ignorable
  Topics []OffsetCommitRequestTopic
    Name string
    Partitions []OffsetCommitRequestPartition
      PartitionIndex int32
      CommittedOffset int64
      CommittedLeaderEpoch int32 v6+ default=-1 ignorable
      CommitTimestamp int64 v1 default=-1
      CommittedMetadata string nullable=0+

OffsetCommitResponse response key=8 versions=0-9 flexible=8+
  ThrottleTimeMs int32 v3+ ignorable
  Topics []OffsetCommitResponseTopic
    Name string
    Partitions []OffsetCommitResponsePartition
      PartitionIndex int32
      ErrorCode int16

OffsetFetchRequest request key=9 versions=0-9 flexible=6+
  GroupId string v0-7
  Topics []OffsetFetchRequestTopic v0-7 nullable=2-7
    Name string v0-7
    PartitionIndexes []int32 v0-7
  Groups []OffsetFetchRequestGroup v8+
    GroupId string v8+
    MemberId string v9+ nullable=9+ default=null ignorable
    MemberEpoch int32 v9+ default=-1 ignorable
    Topics []OffsetFetchRequestTopics v8+ nullable=8+
      Name string v8+
      PartitionIndexes []int32 v8+
  RequireStable bool v7+ default=false

OffsetFetchResponse response key=9 versions=0-9 flexible=6+
  ThrottleTimeMs int32 v3+ ignorable
  Topics []OffsetFetchResponseTopic v0-7
    Name string v0-7
    Partitions []OffsetFetchResponsePartition v0-7
      PartitionIndex int32 v0-7
      CommittedOffset int64 v0-7
      CommittedLeaderEpoch int32 v5-7 default=-1 ignorable
      Metadata string v0-7 nullable=0-7
      ErrorCode int16 v0-7
  ErrorCode int16 v2-7 default=0 ignorable
  Groups []OffsetFetchResponseGroup v8+
    GroupId string v8+
    Topics []OffsetFetchResponseTopics v8+
      Name string v8+
      Partitions []OffsetFetchResponsePartitions v8+
        PartitionIndex int32 v8+
        CommittedOffset int64 v8+
        CommittedLeaderEpoch int32 v8+ default=-1 ignorable
        Metadata string v8+ nullable=8+
        ErrorCode int16 v8+
    ErrorCode int16 v8+ default=0

FindCoordinatorRequest request key=10 versions=0-6 flexible=3+
  Key string v0-3
  KeyType int8 v1+ default=0
  CoordinatorKeys []string v4+

FindCoordinatorResponse response key=10 versions=0-6 flexible=3+
  ThrottleTimeMs int32 v1+ ignorable
  ErrorCode int16 v0-3
  ErrorMessage string v1-3 nullable=1-3 ignorable
  NodeId int32 v0-3
  Host string v0-3
  Port int32 v0-3
  Coordinators []Coordinator v4+
    Key string v4+
    NodeId int32 v4+
    Host string v4+
    Port int32 v4+
    ErrorCode int16 v4+
    ErrorMessage string v4+ nullable=4+ ignorable

JoinGroupRequest request key=11 versions=0-9 flexible=6+
  GroupId string
  SessionTimeoutMs int32
  RebalanceTimeoutMs int32 v1+ default=-1 ignorable
  MemberId string
  GroupInstanceId string v5+ nullable=5+ default=null
  ProtocolType string
  Protocols []JoinGroupRequestProtocol
    Name string
    Metadata bytes
  Reason string v8+ nullable=8+ default=null ignorable

JoinGroupResponse response key=11 versions=0-9 flexible=6+
  ThrottleTimeMs int32 v2+ ignorable
  ErrorCode int16
  GenerationId int32 default=-1
  ProtocolType string v7+ nullable=7+ default=null ignorable
  ProtocolName string nullable=7+
  Leader string
  SkipAssignment bool v9+ default=false
  MemberId string
  Members []JoinGroupResponseMember
    MemberId string
    GroupInstanceId string v5+ nullable=5+ default=null ignorable
    Metadata bytes

HeartbeatRequest request key=12 versions=0-4 flexible=4+
  GroupId string
  GenerationId int32
  MemberId string
  GroupInstanceId string v3+ nullable=3+ default=null

HeartbeatResponse response key=12 versions=0-4 flexible=4+
  ThrottleTimeMs int32 v1+ ignorable
  ErrorCode int16

LeaveGroupRequest request key=13 versions=0-5 flexible=4+
  GroupId string
  MemberId string v0-2
  Members []MemberIdentity v3+
    MemberId string v3+
    GroupInstanceId string v3+ nullable=3+ default=null
    Reason string v5+ nullable=5+ default=null ignorable

LeaveGroupResponse response key=13 versions=0-5 flexible=4+
  ThrottleTimeMs int32 v1+ ignorable
  ErrorCode int16
  Members []MemberResponse v3+
    MemberId string v3+
    GroupInstanceId string v3+ nullable=3+
    ErrorCode int16 v3+

SyncGroupRequest request key=14 versions=0-5 flexible=4+
  GroupId string
  GenerationId int32
  MemberId string
  GroupInstanceId string v3+ nullable=3+ default=null
  ProtocolType string v5+ nullable=5+ default=null ignorable
  ProtocolName string v5+ nullable=5+ default=null ignorable
  Assignments []SyncGroupRequestAssignment
    MemberId string
    Assignment bytes

SyncGroupResponse response key=14 versions=0-5 flexible=4+
  ThrottleTimeMs int32 v1+ ignorable
  ErrorCode int16
  ProtocolType string v5+ nullable=5+ default=null ignorable
  ProtocolName string v5+ nullable=5+ default=null ignorable
  Assignment bytes

DescribeGroupsRequest request key=15 versions=0-5 flexible=5+
  Groups []string
  IncludeAuthorizedOperations bool v3+

DescribeGroupsResponse response key=15 versions=0-5 flexible=5+
  ThrottleTimeMs int32 v1+ ignorable
  Groups []DescribedGroup
    ErrorCode int16
    GroupId string
    GroupState string
    ProtocolType string
    ProtocolData string
    Members []DescribedGroupMember
      MemberId string
      GroupInstanceId string v4+ nullable=4+ default=null ignorable
      ClientId string
      ClientHost string
      MemberMetadata bytes
      MemberAssignment bytes
    AuthorizedOperations int32 v3+ default=-2147483648

ListGroupsRequest request key=16 versions=0-5 flexible=3+
  StatesFilter []string v4+
  TypesFilter []string v5+

ListGroupsResponse response key=16 versions=0-5 flexible=3+
  ThrottleTimeMs int32 v1+ ignorable
  ErrorCode int16
  Groups []ListedGroup
    GroupId string
    ProtocolType string
    GroupState string v4+ ignorable
    GroupType string v5+ ignorable

SaslHandshakeRequest request key=17 versions=0-1 flexible=none
  Mechanism string

SaslHandshakeResponse response key=17 versions=0-1 flexible=none
  ErrorCode int16
  Mechanisms []string

ApiVersionsRequest request key=18 versions=0-4 flexible=3+
  ClientSoftwareName string v3+ ignorable
  ClientSoftwareVersion string v3+ ignorable

ApiVersionsResponse response key=18 versions=0-4 flexible=3+
  ErrorCode int16
  ApiKeys []ApiVersion
    ApiKey int16
    MinVersion int16
    MaxVersion int16
  ThrottleTimeMs int32 v1+ ignorable
  SupportedFeatures []SupportedFeatureKey v3+ tag=0 tagged=3+ ignorable
    Name string v3+
    MinVersion int16 v3+
    MaxVersion int16 v3+
  FinalizedFeaturesEpoch int64 v3+ tag=1 tagged=3+ default=-1 ignorable
  FinalizedFeatures []FinalizedFeatureKey v3+ tag=2 tagged=3+ ignorable
    Name string v3+
    MaxVersionLevel int16 v3+
    MinVersionLevel int16 v3+
  ZkMigrationReady bool v3+ tag=3 tagged=3+ default=false ignorable

CreateTopicsRequest request key=19 versions=0-7 flexible=5+
  Topics []CreatableTopic
    Name string
    NumPartitions int32
    ReplicationFactor int16
    Assignments []CreatableReplicaAssignment
      PartitionIndex int32
      BrokerIds []int32
    Configs []CreatableTopicConfig
      Name string
      Value string nullable=0+
  timeoutMs int32 default=60000
  validateOnly bool v1+ default=false

CreateTopicsResponse response key=19 versions=0-7 flexible=5+
  ThrottleTimeMs int32 v2+ ignorable
  Topics []CreatableTopicResult
    Name string
    TopicId uuid v7+ ignorable
    ErrorCode int16
    ErrorMessage string v1+ nullable=0+ ignorable
    TopicConfigErrorCode int16 v5+ tag=0 tagged=5+ ignorable
    NumPartitions int32 v5+ default=-1 ignorable
    ReplicationFactor int16 v5+ default=-1 ignorable
    Configs []CreatableTopicConfigs v5+ nullable=5+ ignorable
      Name string v5+
      Value string v5+ nullable=5+
      ReadOnly bool v5+
      ConfigSource int8 v5+ default=-1 ignorable
      IsSensitive bool v5+

DeleteTopicsRequest request key=20 versions=0-6 flexible=4+
  Topics []DeleteTopicState v6+
    Name string v6+ nullable=6+ default=null
    TopicId uuid v6+
  TopicNames []string v0-5 ignorable
  TimeoutMs int32

DeleteTopicsResponse response key=20 versions=0-6 flexible=4+
  ThrottleTimeMs int32 v1+ ignorable
  Responses []DeletableTopicResult
    Name string nullable=6+
    TopicId uuid v6+ ignorable
    ErrorCode int16
    ErrorMessage string v5+ nullable=5+ default=null ignorable

DeleteRecordsRequest request key=21 versions=0-2 flexible=2+
  Topics []DeleteRecordsTopic
    Name string
    Partitions []DeleteRecordsPartition
      PartitionIndex int32
      Offset int64
  TimeoutMs int32

DeleteRecordsResponse response key=21 versions=0-2 flexible=2+
  ThrottleTimeMs int32
  Topics []DeleteRecordsTopicResult
    Name string
    Partitions []DeleteRecordsPartitionResult
      PartitionIndex int32
      LowWatermark int64
      ErrorCode int16

InitProducerIdRequest request key=22 versions=0-5 flexible=2+
  TransactionalId string nullable=0+
  TransactionTimeoutMs int32
  ProducerId int64 v3+ default=-1
  ProducerEpoch int16 v3+ default=-1

InitProducerIdResponse response key=22 versions=0-5 flexible=2+
  ThrottleTimeMs int32 ignorable
  ErrorCode int16
  ProducerId int64 default=-1
  ProducerEpoch int16

OffsetForLeaderEpochRequest request key=23 versions=0-4 flexible=4+
  ReplicaId int32 v3+ default=-2 ignorable
  Topics []OffsetForLeaderTopic
    Topic string
    Partitions []OffsetForLeaderPartition
      Partition int32
      CurrentLeaderEpoch int32 v2+ default=-1 ignorable
      LeaderEpoch int32

OffsetForLeaderEpochResponse response key=23 versions=0-4 flexible=4+
  ThrottleTimeMs int32 v2+ ignorable
  Topics []OffsetForLeaderTopicResult
    Topic string
    Partitions []EpochEndOffset
      ErrorCode int16
      Partition int32
      LeaderEpoch int32 v1+ default=-1 ignorable
      EndOffset int64 default=-1

AddPartitionsToTxnRequest request key=24 versions=0-5 flexible=3+
  Transactions []AddPartitionsToTxnTransaction v4+
    TransactionalId string v4+
    ProducerId int64 v4+
    ProducerEpoch int16 v4+
    VerifyOnly bool v4+ default=false
    Topics []AddPartitionsToTxnTopic v4+
  V3AndBelowTransactionalId string v0-3
  V3AndBelowProducerId int64 v0-3
  V3AndBelowProducerEpoch int16 v0-3
  V3AndBelowTopics []AddPartitionsToTxnTopic v0-3
  struct AddPartitionsToTxnTopic v0+
    Name string
    Partitions []int32

AddPartitionsToTxnResponse response key=24 versions=0-5 flexible=3+
  ThrottleTimeMs int32
  ErrorCode int16 v4+ ignorable
  ResultsByTransaction []AddPartitionsToTxnResult v4+
    TransactionalId string v4+
    TopicResults []AddPartitionsToTxnTopicResult v4+
  ResultsByTopicV3AndBelow []AddPartitionsToTxnTopicResult v0-3
  struct AddPartitionsToTxnTopicResult v0+
    Name string
    ResultsByPartition []AddPartitionsToTxnPartitionResult
  struct AddPartitionsToTxnPartitionResult v0+
    PartitionIndex int32
    PartitionErrorCode int16

AddOffsetsToTxnRequest request key=25 versions=0-4 flexible=3+
  TransactionalId string
  ProducerId int64
  ProducerEpoch int16
  GroupId string

AddOffsetsToTxnResponse response key=25 versions=0-4 flexible=3+
  ThrottleTimeMs int32
  ErrorCode int16

EndTxnRequest request key=26 versions=0-5 flexible=3+ unstable
  TransactionalId string
  ProducerId int64
  ProducerEpoch int16
  Committed bool

EndTxnResponse response key=26 versions=0-5 flexible=3+
  ThrottleTimeMs int32
  ErrorCode int16
  ProducerId int64 v5+ default=-1 ignorable
  ProducerEpoch int16 v5+ default=-1 ignorable

WriteTxnMarkersRequest request key=27 versions=0-1 flexible=1+
  Markers []WritableTxnMarker
    ProducerId int64
    ProducerEpoch int16
    TransactionResult bool
    Topics []WritableTxnMarkerTopic
      Name string
      PartitionIndexes []int32
    CoordinatorEpoch int32

WriteTxnMarkersResponse response key=27 versions=0-1 flexible=1+
  Markers []WritableTxnMarkerResult
    ProducerId int64
    Topics []WritableTxnMarkerTopicResult
      Name string
      Partitions []WritableTxnMarkerPartitionResult
        PartitionIndex int32
        ErrorCode int16

TxnOffsetCommitRequest request key=28 versions=0-4 flexible=3+
  TransactionalId string
  GroupId string
  ProducerId int64
  ProducerEpoch int16
  GenerationId int32 v3+ default=-1
  MemberId string v3+ default=""
  GroupInstanceId string v3+ nullable=3+ default=null
  Topics []TxnOffsetCommitRequestTopic
    Name string
    Partitions []TxnOffsetCommitRequestPartition
      PartitionIndex int32
      CommittedOffset int64
      CommittedLeaderEpoch int32 v2+ default=-1 ignorable
      CommittedMetadata string nullable=0+

TxnOffsetCommitResponse response key=28 versions=0-4 flexible=3+
  ThrottleTimeMs int32
  Topics []TxnOffsetCommitResponseTopic
    Name string
    Partitions []TxnOffsetCommitResponsePartition
      PartitionIndex int32
      ErrorCode int16

DescribeAclsRequest request key=29 versions=0-3 flexible=2+
  ResourceTypeFilter int8
  ResourceNameFilter string nullable=0+
  PatternTypeFilter int8 v1+ default=3
  PrincipalFilter string nullable=0+
  HostFilter string nullable=0+
  Operation int8
  PermissionType int8

DescribeAclsResponse response key=29 versions=0-3 flexible=2+
  ThrottleTimeMs int32
  ErrorCode int16
  ErrorMessage string nullable=0+
  Resources []DescribeAclsResource
    ResourceType int8
    ResourceName string
    PatternType int8 v1+ default=3
    Acls []AclDescription
      Principal string
      Host string
      Operation int8
      PermissionType int8

CreateAclsRequest request key=30 versions=0-3 flexible=2+
  Creations []AclCreation
    ResourceType int8
    ResourceName string
    ResourcePatternType int8 v1+ default=3
    Principal string
    Host string
    Operation int8
    PermissionType int8

CreateAclsResponse response key=30 versions=0-3 flexible=2+
  ThrottleTimeMs int32
  Results []AclCreationResult
    ErrorCode int16
    ErrorMessage string nullable=0+

DeleteAclsRequest request key=31 versions=0-3 flexible=2+
  Filters []DeleteAclsFilter
    ResourceTypeFilter int8
    ResourceNameFilter string nullable=0+
    PatternTypeFilter int8 v1+ default=3
    PrincipalFilter string nullable=0+
    HostFilter string nullable=0+
    Operation int8
    PermissionType int8

DeleteAclsResponse response key=31 versions=0-3 flexible=2+
  ThrottleTimeMs int32
  FilterResults []DeleteAclsFilterResult
    ErrorCode int16
    ErrorMessage string nullable=0+
    MatchingAcls []DeleteAclsMatchingAcl
      ErrorCode int16
      ErrorMessage string nullable=0+
      ResourceType int8
      ResourceName string
      PatternType int8 v1+ default=3
      Principal string
      Host string
      Operation int8
      PermissionType int8

DescribeConfigsRequest request key=32 versions=0-4 flexible=4+
  Resources []DescribeConfigsResource
    ResourceType int8
    ResourceName string
    ConfigurationKeys []string nullable=0+
  IncludeSynonyms bool v1+ default=false
  IncludeDocumentation bool v3+ default=false

DescribeConfigsResponse response key=32 versions=0-4 flexible=4+
  ThrottleTimeMs int32
  Results []DescribeConfigsResult
    ErrorCode int16
    ErrorMessage string nullable=0+
    ResourceType int8
    ResourceName string
    Configs []DescribeConfigsResourceResult
      Name string
      Value string nullable=0+
      ReadOnly bool
      IsDefault bool v0
      ConfigSource int8 v1+ default=-1 ignorable
      IsSensitive bool
      Synonyms []DescribeConfigsSynonym v1+ ignorable
        Name string v1+
        Value string v1+ nullable=0+
        Source int8 v1+
      ConfigType int8 v3+ default=0 ignorable
      Documentation string v3+ nullable=0+ ignorable

AlterConfigsRequest request key=33 versions=0-2 flexible=2+
  Resources []AlterConfigsResource
    ResourceType int8
    ResourceName string
    Configs []AlterableConfig
      Name string
      Value string nullable=0+
  ValidateOnly bool

AlterConfigsResponse response key=33 versions=0-2 flexible=2+
  ThrottleTimeMs int32
  Responses []AlterConfigsResourceResponse
    ErrorCode int16
    ErrorMessage string nullable=0+
    ResourceType int8
    ResourceName string

DescribeLogDirsRequest request key=35 versions=0-4 flexible=2+
  Topics []DescribableLogDirTopic nullable=0+
    Topic string
    Partitions []int32

DescribeLogDirsResponse response key=35 versions=0-4 flexible=2+
  ThrottleTimeMs int32
  ErrorCode int16 v3+ ignorable
  Results []DescribeLogDirsResult
    ErrorCode int16
    LogDir string
    Topics []DescribeLogDirsTopic
      Name string
      Partitions []DescribeLogDirsPartition
        PartitionIndex int32
        PartitionSize int64
        OffsetLag int64
        IsFutureKey bool
    TotalBytes int64 v4+ default=-1 ignorable
    UsableBytes int64 v4+ default=-1 ignorable

SaslAuthenticateRequest request key=36 versions=0-2 flexible=2+
  AuthBytes bytes

SaslAuthenticateResponse response key=36 versions=0-2 flexible=2+
  ErrorCode int16
  ErrorMessage string nullable=0+
  AuthBytes bytes
  SessionLifetimeMs int64 v1+ default=0 ignorable

CreatePartitionsRequest request key=37 versions=0-3 flexible=2+
  Topics []CreatePartitionsTopic
    Name string
    Count int32
    Assignments []CreatePartitionsAssignment nullable=0+
      BrokerIds []int32
  TimeoutMs int32
  ValidateOnly bool

CreatePartitionsResponse response key=37 versions=0-3 flexible=2+
  ThrottleTimeMs int32
  Results []CreatePartitionsTopicResult
    Name string
    ErrorCode int16
    ErrorMessage string nullable=0+ default=null

DeleteGroupsRequest request key=42 versions=0-2 flexible=2+
  GroupsNames []string

DeleteGroupsResponse response key=42 versions=0-2 flexible=2+
  ThrottleTimeMs int32
  Results []DeletableGroupResult
    GroupId string
    ErrorCode int16

ElectLeadersRequest request key=43 versions=0-2 flexible=2+
  ElectionType int8 v1+
  TopicPartitions []TopicPartitions nullable=0+
    Topic string
    Partitions []int32
  TimeoutMs int32 default=60000

ElectLeadersResponse response key=43 versions=0-2 flexible=2+
  ThrottleTimeMs int32
  ErrorCode int16 v1+
  ReplicaElectionResults []ReplicaElectionResult
    Topic string
    PartitionResult []PartitionResult
      PartitionId int32
      ErrorCode int16
      ErrorMessage string nullable=0+

IncrementalAlterConfigsRequest request key=44 versions=0-1 flexible=1+
  Resources []AlterConfigsResource
    ResourceType int8
    ResourceName string
    Configs []AlterableConfig
      Name string
      ConfigOperation int8
      Value string nullable=0+
  ValidateOnly bool

IncrementalAlterConfigsResponse response key=44 versions=0-1 flexible=1+
  ThrottleTimeMs int32
  Responses []AlterConfigsResourceResponse
    ErrorCode int16
    ErrorMessage string nullable=0+
    ResourceType int8
    ResourceName string

AlterPartitionReassignmentsRequest request key=45 versions=0 flexible=0+
  TimeoutMs int32 default=60000
  Topics []ReassignableTopic
    Name string
    Partitions []ReassignablePartition
      PartitionIndex int32
      Replicas []int32 nullable=0+ default=null

AlterPartitionReassignmentsResponse response key=45 versions=0 flexible=0+
  ThrottleTimeMs int32
  ErrorCode int16
  ErrorMessage string nullable=0+
  Responses []ReassignableTopicResponse
    Name string
    Partitions []ReassignablePartitionResponse
      PartitionIndex int32
      ErrorCode int16
      ErrorMessage string nullable=0+

ListPartitionReassignmentsRequest request key=46 versions=0 flexible=0+
  TimeoutMs int32 default=60000
  Topics []ListPartitionReassignmentsTopics nullable=0+ default=null
    Name string
    PartitionIndexes []int32

ListPartitionReassignmentsResponse response key=46 versions=0 flexible=0+
  ThrottleTimeMs int32
  ErrorCode int16
  ErrorMessage string nullable=0+
  Topics []OngoingTopicReassignment
    Name string
    Partitions []OngoingPartitionReassignment
      PartitionIndex int32
      Replicas []int32
      AddingReplicas []int32
      RemovingReplicas []int32

OffsetDeleteRequest request key=47 versions=0 flexible=none
  GroupId string
  Topics []OffsetDeleteRequestTopic
    Name string
    Partitions []OffsetDeleteRequestPartition
      PartitionIndex int32

OffsetDeleteResponse response key=47 versions=0 flexible=none
  ErrorCode int16
  ThrottleTimeMs int32 ignorable
  Topics []OffsetDeleteResponseTopic
    Name string
    Partitions []OffsetDeleteResponsePartition
      PartitionIndex int32
      ErrorCode int16

DescribeClientQuotasRequest request key=48 versions=0-1 flexible=1+
  Components []ComponentData
    EntityType string
    MatchType int8
    Match string nullable=0+
  Strict bool

DescribeClientQuotasResponse response key=48 versions=0-1 flexible=1+
  ThrottleTimeMs int32
  ErrorCode int16
  ErrorMessage string nullable=0+
  Entries []EntryData nullable=0+
    Entity []EntityData
      EntityType string
      EntityName string nullable=0+
    Values []ValueData
      Key string
      Value float64

AlterClientQuotasRequest request key=49 versions=0-1 flexible=1+
  Entries []EntryData
    Entity []EntityData
      EntityType string
      EntityName string nullable=0+
    Ops []OpData
      Key string
      Value float64
      Remove bool
  ValidateOnly bool

AlterClientQuotasResponse response key=49 versions=0-1 flexible=1+
  ThrottleTimeMs int32
  Entries []EntryData
    ErrorCode int16
    ErrorMessage string nullable=0+
    Entity []EntityData
      EntityType string
      EntityName string nullable=0+

DescribeUserScramCredentialsRequest request key=50 versions=0 flexible=0+
  Users []UserName nullable=0+
    Name string

DescribeUserScramCredentialsResponse response key=50 versions=0 flexible=0+
  ThrottleTimeMs int32
  ErrorCode int16
  ErrorMessage string nullable=0+
  Results []DescribeUserScramCredentialsResult
    User string
    ErrorCode int16
    ErrorMessage string nullable=0+
    CredentialInfos []CredentialInfo
      Mechanism int8
      Iterations int32

AlterUserScramCredentialsRequest request key=51 versions=0 flexible=0+
  Deletions []ScramCredentialDeletion
    Name string
    Mechanism int8
  Upsertions []ScramCredentialUpsertion
    Name string
    Mechanism int8
    Iterations int32
    Salt bytes
    SaltedPassword bytes

AlterUserScramCredentialsResponse response key=51 versions=0 flexible=0+
  ThrottleTimeMs int32
  Results []AlterUserScramCredentialsResult
    User string
    ErrorCode int16
    ErrorMessage string nullable=0+

DescribeClusterRequest request key=60 versions=0-1 flexible=0+
  IncludeClusterAuthorizedOperations bool
  EndpointType int8 v1+ default=1

DescribeClusterResponse response key=60 versions=0-1 flexible=0+
  ThrottleTimeMs int32
  ErrorCode int16
  ErrorMessage string nullable=0+ default=null
  EndpointType int8 v1+ default=1
  ClusterId string
  ControllerId int32 default=-1
  Brokers []DescribeClusterBroker
    BrokerId int32
    Host string
    Port int32
    Rack string nullable=0+ default=null
  ClusterAuthorizedOperations int32 default=-2147483648

DescribeProducersRequest request key=61 versions=0 flexible=0+
  Topics []TopicRequest
    Name string
    PartitionIndexes []int32

DescribeProducersResponse response key=61 versions=0 flexible=0+
  ThrottleTimeMs int32
  Topics []TopicResponse
    Name string
    Partitions []PartitionResponse
      PartitionIndex int32
      ErrorCode int16
      ErrorMessage string nullable=0+ default=null
      ActiveProducers []ProducerState
        ProducerId int64
        ProducerEpoch int32
        LastSequence int32 default=-1
        LastTimestamp int64 default=-1
        CoordinatorEpoch int32
        CurrentTxnStartOffset int64 default=-1

DescribeTransactionsRequest request key=65 versions=0 flexible=0+
  TransactionalIds []string

DescribeTransactionsResponse response key=65 versions=0 flexible=0+
  ThrottleTimeMs int32
  TransactionStates []TransactionState
    ErrorCode int16
    TransactionalId string
    TransactionState string
    TransactionTimeoutMs int32
    TransactionStartTimeMs int64
    ProducerId int64
    ProducerEpoch int16
    Topics []TopicData
      Topic string
      Partitions []int32

ListTransactionsRequest request key=66 versions=0-1 flexible=0+
  StateFilters []string
  ProducerIdFilters []int64
  DurationFilter int64 v1+ default=-1

ListTransactionsResponse response key=66 versions=0-1 flexible=0+
  ThrottleTimeMs int32
  ErrorCode int16
  UnknownStateFilters []string
  TransactionStates []TransactionState
    TransactionalId string
    ProducerId int64
    TransactionState string

ConsumerGroupHeartbeatRequest request key=68 versions=0-1 flexible=0+ unstable
  GroupId string
  MemberId string
  MemberEpoch int32
  InstanceId string nullable=0+ default=null
  RackId string nullable=0+ default=null
  RebalanceTimeoutMs int32 default=-1
  SubscribedTopicNames []string nullable=0+ default=null
  SubscribedTopicRegex string v1+ nullable=1+ default=null
  ServerAssignor string nullable=0+ default=null
  TopicPartitions []TopicPartitions nullable=0+ default=null
    TopicId uuid
    Partitions []int32

ConsumerGroupHeartbeatResponse response key=68 versions=0-1 flexible=0+
  ThrottleTimeMs int32
  ErrorCode int16
  ErrorMessage string nullable=0+ default=null
  MemberId string nullable=0+ default=null
  MemberEpoch int32
  HeartbeatIntervalMs int32
  Assignment Assignment nullable=0+ default=null
    TopicPartitions []TopicPartitions
  struct TopicPartitions v0+
    TopicId uuid
    Partitions []int32

ConsumerGroupDescribeRequest request key=69 versions=0 flexible=0+
  GroupIds []string
  IncludeAuthorizedOperations bool

ConsumerGroupDescribeResponse response key=69 versions=0 flexible=0+
  ThrottleTimeMs int32
  Groups []DescribedGroup
    ErrorCode int16
    ErrorMessage string nullable=0+ default=null
    GroupId string
    GroupState string
    GroupEpoch int32
    AssignmentEpoch int32
    AssignorName string
    Members []Member
      MemberId string
      InstanceId string nullable=0+ default=null
      RackId string nullable=0+ default=null
      MemberEpoch int32
      ClientId string
      ClientHost string
      SubscribedTopicNames []string
      SubscribedTopicRegex string nullable=0+ default=null
      Assignment Assignment
      TargetAssignment Assignment
    AuthorizedOperations int32 default=-2147483648
  struct TopicPartitions v0+
    TopicId uuid
    TopicName string
    Partitions []int32
  struct Assignment v0+
    TopicPartitions []TopicPartitions

DescribeTopicPartitionsRequest request key=75 versions=0 flexible=0+
  Topics []TopicRequest
    Name string
  ResponsePartitionLimit int32 default=2000
  Cursor Cursor nullable=0+ default=null
    TopicName string
    PartitionIndex int32

DescribeTopicPartitionsResponse response key=75 versions=0 flexible=0+
  ThrottleTimeMs int32 ignorable
  Topics []DescribeTopicPartitionsResponseTopic
    ErrorCode int16
    Name string nullable=0+
    TopicId uuid ignorable
    IsInternal bool default=false ignorable
    Partitions []DescribeTopicPartitionsResponsePartition
      ErrorCode int16
      PartitionIndex int32
      LeaderId int32
      LeaderEpoch int32 default=-1 ignorable
      ReplicaNodes []int32
      IsrNodes []int32
      EligibleLeaderReplicas []int32 nullable=0+ default=null
      LastKnownElr []int32 nullable=0+ default=null
      OfflineReplicas []int32 ignorable
    TopicAuthorizedOperations int32 default=-2147483648
  NextCursor Cursor nullable=0+ default=null
    TopicName string
    PartitionIndex int32
"""

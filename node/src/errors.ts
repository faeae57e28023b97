// Typed errors and the one table that turns them into etcd's wire errors.
//
// Inside the server, code throws EtcdError subclasses (or the shared instances
// below). Only the API edge (gRPC binding, JSON gateway) converts them, through
// toStatus(). Clients match these messages byte for byte: the Go client maps
// the text back to a typed error, kube-apiserver compares with ==, the etcd3
// npm client matches substrings. Never reword one.

/** gRPC status codes (numeric values are the gRPC wire values). */
export const Code = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;
export type CodeValue = (typeof Code)[keyof typeof Code];

/** An error with a fixed gRPC code and etcd's exact message. */
export class EtcdError extends Error {
  override readonly name = "EtcdError";
  constructor(
    readonly code: CodeValue,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function e(code: CodeValue, message: string): EtcdError {
  return new EtcdError(code, message);
}

/**
 * etcd's table of client-visible errors. Throw these (they carry no stack
 * worth keeping; they describe the request, not a server fault).
 */
export const Errors = {
  EmptyKey: e(Code.InvalidArgument, "etcdserver: key is not provided"),
  KeyNotFound: e(Code.InvalidArgument, "etcdserver: key not found"),
  ValueProvided: e(Code.InvalidArgument, "etcdserver: value is provided"),
  LeaseProvided: e(Code.InvalidArgument, "etcdserver: lease is provided"),
  TooManyOps: e(Code.InvalidArgument, "etcdserver: too many operations in txn request"),
  DuplicateKey: e(Code.InvalidArgument, "etcdserver: duplicate key given in txn request"),
  InvalidClientAPIVersion: e(Code.InvalidArgument, "etcdserver: invalid client api version"),
  InvalidSortOption: e(Code.InvalidArgument, "etcdserver: invalid sort option"),
  Compacted: e(Code.OutOfRange, "etcdserver: mvcc: required revision has been compacted"),
  FutureRev: e(Code.OutOfRange, "etcdserver: mvcc: required revision is a future revision"),
  NoSpace: e(Code.ResourceExhausted, "etcdserver: mvcc: database space exceeded"),
  LeaseNotFound: e(Code.NotFound, "etcdserver: requested lease not found"),
  LeaseExist: e(Code.FailedPrecondition, "etcdserver: lease already exists"),
  LeaseTTLTooLarge: e(Code.OutOfRange, "etcdserver: too large lease TTL"),
  WatchCanceled: e(Code.Canceled, "etcdserver: watch canceled"),
  MemberExist: e(Code.FailedPrecondition, "etcdserver: member ID already exist"),
  PeerURLExist: e(Code.FailedPrecondition, "etcdserver: Peer URLs already exists"),
  MemberNotEnoughStarted: e(Code.FailedPrecondition, "etcdserver: re-configuration failed due to not enough started members"),
  MemberBadURLs: e(Code.InvalidArgument, "etcdserver: given member URLs are invalid"),
  MemberNotFound: e(Code.NotFound, "etcdserver: member not found"),
  MemberNotLearner: e(Code.FailedPrecondition, "etcdserver: can only promote a learner member"),
  LearnerNotReady: e(Code.FailedPrecondition, "etcdserver: can only promote a learner member which is in sync with leader"),
  TooManyLearners: e(Code.FailedPrecondition, "etcdserver: too many learner members in cluster"),
  ClusterIdMismatch: e(Code.FailedPrecondition, "etcdserver: cluster ID mismatch"),
  RequestTooLarge: e(Code.InvalidArgument, "etcdserver: request is too large"),
  TooManyRequests: e(Code.ResourceExhausted, "etcdserver: too many requests"),
  RootUserNotExist: e(Code.FailedPrecondition, "etcdserver: root user does not exist"),
  RootRoleNotExist: e(Code.FailedPrecondition, "etcdserver: root user does not have root role"),
  UserAlreadyExist: e(Code.FailedPrecondition, "etcdserver: user name already exists"),
  UserEmpty: e(Code.InvalidArgument, "etcdserver: user name is empty"),
  UserNotFound: e(Code.FailedPrecondition, "etcdserver: user name not found"),
  RoleAlreadyExist: e(Code.FailedPrecondition, "etcdserver: role name already exists"),
  RoleNotFound: e(Code.FailedPrecondition, "etcdserver: role name not found"),
  RoleEmpty: e(Code.InvalidArgument, "etcdserver: role name is empty"),
  AuthFailed: e(Code.InvalidArgument, "etcdserver: authentication failed, invalid user ID or password"),
  PermissionNotGiven: e(Code.InvalidArgument, "etcdserver: permission not given"),
  PermissionDenied: e(Code.PermissionDenied, "etcdserver: permission denied"),
  RoleNotGranted: e(Code.FailedPrecondition, "etcdserver: role is not granted to the user"),
  PermissionNotGranted: e(Code.FailedPrecondition, "etcdserver: permission is not granted to the role"),
  AuthNotEnabled: e(Code.FailedPrecondition, "etcdserver: authentication is not enabled"),
  InvalidAuthToken: e(Code.Unauthenticated, "etcdserver: invalid auth token"),
  InvalidAuthMgmt: e(Code.InvalidArgument, "etcdserver: invalid auth management"),
  AuthOldRevision: e(Code.InvalidArgument, "etcdserver: revision of auth store is old"),
  NoLeader: e(Code.Unavailable, "etcdserver: no leader"),
  NotLeader: e(Code.FailedPrecondition, "etcdserver: not leader"),
  LeaderChanged: e(Code.Unavailable, "etcdserver: leader changed"),
  NotCapable: e(Code.FailedPrecondition, "etcdserver: not capable"),
  Stopped: e(Code.Unavailable, "etcdserver: server stopped"),
  Timeout: e(Code.Unavailable, "etcdserver: request timed out"),
  TimeoutDueToLeaderFail: e(Code.Unavailable, "etcdserver: request timed out, possibly due to previous leader failure"),
  TimeoutDueToConnectionLost: e(Code.Unavailable, "etcdserver: request timed out, possibly due to connection lost"),
  TimeoutWaitAppliedIndex: e(Code.Unavailable, "etcdserver: request timed out, waiting for the applied index took too long"),
  Unhealthy: e(Code.Unavailable, "etcdserver: unhealthy cluster"),
  Corrupt: e(Code.DataLoss, "etcdserver: corrupt cluster"),
  NotSupportedForLearner: e(Code.FailedPrecondition, "etcdserver: rpc not supported for learner"),
  BadLeaderTransferee: e(Code.FailedPrecondition, "etcdserver: bad leader transferee"),
  InvalidDowngradeVersionFormat: e(Code.InvalidArgument, "etcdserver: wrong downgrade target version format"),
  InvalidDowngradeTargetVersion: e(Code.InvalidArgument, "etcdserver: invalid downgrade target version"),
  ClusterVersionUnavailable: e(Code.FailedPrecondition, "etcdserver: cluster version not found during downgrade"),
  DowngradeInProcess: e(Code.FailedPrecondition, "etcdserver: cluster has a downgrade job in progress"),
  NoInflightDowngrade: e(Code.FailedPrecondition, "etcdserver: no inflight downgrade job"),
  Canceled: e(Code.Canceled, "etcdserver: request canceled"),
  DeadlineExceeded: e(Code.DeadlineExceeded, "etcdserver: context deadline exceeded"),
  // Not in etcd's client table, but these are the texts etcd's gRPC layer sends.
  /** A proposal that never reached raft (no leader) until the request timeout: etcd 3.6 passes the context's error through. */
  ProposalDeadline: e(Code.DeadlineExceeded, "context deadline exceeded"),
  WatcherRangeEmpty: e(Code.InvalidArgument, "mvcc: watcher range is empty"),
  DuplicateWatchID: e(Code.InvalidArgument, "mvcc: duplicate watch ID provided on the WatchStream"),
} as const;

/** Wire form of any error: gRPC code and message. Unknown errors become Unknown. */
export function toStatus(err: unknown): { code: CodeValue; message: string } {
  if (err instanceof EtcdError) return { code: err.code, message: err.message };
  const e = err as { code?: unknown; details?: unknown } | null;
  if (err instanceof Error && typeof e?.code === "number" && e.code >= 0 && e.code <= 16 && typeof e.details === "string") {
    // A gRPC status passed through (e.g. a grpc-js ServiceError, or one built by the binding).
    return { code: e.code as CodeValue, message: e.details };
  }
  return { code: Code.Unknown, message: err instanceof Error ? err.message : String(err) };
}

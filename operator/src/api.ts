// The EtcdCluster resource as TypeScript types, and the names everything else shares.
// The schema with its validation lives in crds/etcdcluster.yaml; these types describe what
// the API server hands us after defaulting (size, onScaleIn, replaceUnhealthyAfterSeconds may
// still be absent on objects stored before a default existed, so they stay optional here).

export const GROUP = "etcd.etcd-ts.io";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = "EtcdCluster";
export const PLURAL = "etcdclusters";

/** The one server-side-apply field manager of the operator. */
export const FIELD_MANAGER = "etcd-ts-operator";

/** Label and annotation keys. */
export const LABEL_CLUSTER = `${GROUP}/cluster`;
export const LABEL_NAME = "app.kubernetes.io/name";
export const LABEL_INSTANCE = "app.kubernetes.io/instance";
export const LABEL_MANAGED_BY = "app.kubernetes.io/managed-by";
/** Hash of the inputs a child object was built from; equal hash → no write. */
export const ANNOTATION_INPUT_HASH = `${GROUP}/input-hash`;
/** On a member's PVC: the etcd member ID (hex) whose data the volume holds. */
export const ANNOTATION_MEMBER_ID = `${GROUP}/member-id`;

export const CLIENT_PORT = 2379;
export const PEER_PORT = 2380;
export const DATA_MOUNT = "/var/lib/etcd-ts";
export const DATA_VOLUME = "data";

export type QuantityValue = string | number;

export interface EtcdClusterSpec {
  size?: number;
  version: string;
  repository?: string;
  storage: {
    size?: QuantityValue;
    storageClassName?: string;
    emptyDir?: { medium?: "" | "Memory"; sizeLimit?: QuantityValue };
    onScaleIn?: "Delete" | "Retain";
  };
  resources?: { limits?: Record<string, QuantityValue>; requests?: Record<string, QuantityValue> };
  podTemplate?: {
    metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
    spec?: {
      affinity?: Record<string, unknown>;
      tolerations?: Record<string, unknown>[];
      nodeSelector?: Record<string, string>;
      priorityClassName?: string;
    };
  };
  etcdOptions?: string[];
  replaceUnhealthyAfterSeconds?: number;
}

export interface MemberStatus {
  id: string;
  name: string;
  peerURL?: string;
  clientURLs?: string[];
  isLearner?: boolean;
  healthy?: boolean;
  unhealthySince?: string;
}

export type ConditionType = "Available" | "Progressing" | "Degraded";

export interface Condition {
  type: ConditionType;
  status: "True" | "False" | "Unknown";
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export type Phase = "Creating" | "Running" | "Scaling" | "Healing" | "Degraded";

export interface EtcdClusterStatus {
  observedGeneration?: number;
  phase?: Phase;
  clusterID?: string;
  selector?: string;
  readyMembers?: number;
  leader?: string;
  currentVersion?: string;
  members?: MemberStatus[];
  conditions?: Condition[];
}

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
}

export interface EtcdCluster {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: EtcdClusterSpec;
  status?: EtcdClusterStatus;
}

/** Defaults the API server applies, applied again here for objects stored before them. */
export function effectiveSize(spec: EtcdClusterSpec): number {
  return spec.size ?? 3;
}

// Desired child objects as pure functions of the EtcdCluster (and, for the StatefulSet's
// replica count and the bootstrap ConfigMap, of the membership the reconciler decided on).
// Nothing here reads the clock, the network or the API server, so the same input always gives
// the same objects; the golden files in operator/testdata/ pin them.
//
// Naming, for a cluster "demo" in namespace "ns":
//   Service demo            client traffic (ClusterIP, port 2379)
//   Service demo-members    headless; gives each pod demo-N.demo-members.ns.svc, published
//                           before the pod is ready so members can reach each other while joining
//   ConfigMap demo-cluster  initial-cluster and initial-cluster-state read by a member's FIRST
//                           start (a member with data ignores them, as etcd does)
//   StatefulSet demo        pods demo-0..demo-(N-1), volume data-demo-N each
//   PodDisruptionBudget demo  minAvailable = quorum(size)

import { createHash } from "node:crypto";
import {
  ANNOTATION_INPUT_HASH, API_VERSION, CLIENT_PORT, DATA_MOUNT, DATA_VOLUME, KIND, LABEL_CLUSTER,
  LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, PEER_PORT, effectiveSize,
} from "./api.js";
import type { EtcdCluster } from "./api.js";

/** A Kubernetes object as plain JSON (what server-side apply takes). */
export interface KObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: OwnerReference[];
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller: boolean;
  blockOwnerDeletion: boolean;
}

/** Settings of the operator (not of one cluster) that shape the children. */
export interface BuildOptions {
  /** Image repository when spec.repository is unset, e.g. ghcr.io/etcd-ts/etcd-ts. */
  readonly defaultRepository: string;
}

export const names = {
  client: (c: EtcdCluster) => c.metadata.name,
  headless: (c: EtcdCluster) => `${c.metadata.name}-members`,
  configMap: (c: EtcdCluster) => `${c.metadata.name}-cluster`,
  statefulSet: (c: EtcdCluster) => c.metadata.name,
  pdb: (c: EtcdCluster) => c.metadata.name,
  pod: (c: EtcdCluster, ordinal: number) => `${c.metadata.name}-${ordinal}`,
  pvc: (c: EtcdCluster, ordinal: number) => `${DATA_VOLUME}-${c.metadata.name}-${ordinal}`,
};

/** The pod's stable DNS name inside the cluster. */
export function podHost(c: EtcdCluster, ordinal: number): string {
  return `${names.pod(c, ordinal)}.${names.headless(c)}.${c.metadata.namespace}.svc`;
}
export const peerURL = (c: EtcdCluster, ordinal: number): string => `http://${podHost(c, ordinal)}:${PEER_PORT}`;
export const clientURL = (c: EtcdCluster, ordinal: number): string => `http://${podHost(c, ordinal)}:${CLIENT_PORT}`;

/** Ordinal of a member name or peer URL of this cluster ("demo-3" → 3), or undefined. */
export function ordinalOf(c: EtcdCluster, nameOrPeerURL: string): number | undefined {
  const prefix = `${c.metadata.name}-`;
  let s = nameOrPeerURL;
  const m = /^https?:\/\/([^.:/]+)/.exec(s);
  if (m?.[1] !== undefined) s = m[1];
  if (!s.startsWith(prefix)) return undefined;
  const rest = s.slice(prefix.length);
  return /^(0|[1-9][0-9]*)$/.test(rest) ? Number(rest) : undefined;
}

/** Labels that select this cluster's pods (immutable: the StatefulSet selector). */
export function selectorLabels(c: EtcdCluster): Record<string, string> {
  return { [LABEL_NAME]: "etcd-ts", [LABEL_INSTANCE]: c.metadata.name, [LABEL_CLUSTER]: c.metadata.name };
}
export function selectorString(c: EtcdCluster): string {
  return Object.entries(selectorLabels(c)).map(([k, v]) => `${k}=${v}`).join(",");
}

function commonLabels(c: EtcdCluster): Record<string, string> {
  return { ...selectorLabels(c), [LABEL_MANAGED_BY]: "etcd-ts-operator" };
}

export function ownerRef(c: EtcdCluster): OwnerReference {
  return { apiVersion: API_VERSION, kind: KIND, name: c.metadata.name, uid: c.metadata.uid, controller: true, blockOwnerDeletion: true };
}

function meta(c: EtcdCluster, name: string): KObject["metadata"] {
  return { name, namespace: c.metadata.namespace, labels: commonLabels(c), ownerReferences: [ownerRef(c)] };
}

/** JSON with object keys sorted, so equal objects hash equally whatever order they were built in. */
export function canonicalJSON(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJSON).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJSON(x)}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

/** Stamps the input-hash annotation: a hash of the object as built, before stamping. */
export function withInputHash<T extends KObject>(obj: T): T {
  const hash = createHash("sha256").update(canonicalJSON(obj)).digest("hex").slice(0, 16);
  return { ...obj, metadata: { ...obj.metadata, annotations: { ...(obj.metadata.annotations ?? {}), [ANNOTATION_INPUT_HASH]: hash } } };
}

export function inputHashOf(obj: { metadata?: { annotations?: Record<string, string> | undefined } } | undefined): string | undefined {
  return obj?.metadata?.annotations?.[ANNOTATION_INPUT_HASH];
}

export function clientService(c: EtcdCluster): KObject {
  return withInputHash({
    apiVersion: "v1",
    kind: "Service",
    metadata: meta(c, names.client(c)),
    spec: {
      type: "ClusterIP",
      selector: selectorLabels(c),
      ports: [{ name: "client", port: CLIENT_PORT, targetPort: "client", protocol: "TCP" }],
    },
  });
}

export function headlessService(c: EtcdCluster): KObject {
  return withInputHash({
    apiVersion: "v1",
    kind: "Service",
    metadata: meta(c, names.headless(c)),
    spec: {
      clusterIP: "None",
      // A joining member must resolve its peers, and they it, before anyone is ready.
      publishNotReadyAddresses: true,
      selector: selectorLabels(c),
      ports: [
        { name: "client", port: CLIENT_PORT, targetPort: "client", protocol: "TCP" },
        { name: "peer", port: PEER_PORT, targetPort: "peer", protocol: "TCP" },
      ],
    },
  });
}

/**
 * What a member reads on its first start. `members` are name → peer URL of the membership a
 * new member joins (itself included); state "new" only while bootstrapping the single seed.
 */
export function clusterConfigMap(c: EtcdCluster, members: ReadonlyArray<{ name: string; peerURL: string }>, state: "new" | "existing"): KObject {
  const initial = [...members].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((m) => `${m.name}=${m.peerURL}`).join(",");
  return withInputHash({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: meta(c, names.configMap(c)),
    data: {
      ETCD_INITIAL_CLUSTER: initial,
      ETCD_INITIAL_CLUSTER_STATE: state,
      ETCD_INITIAL_CLUSTER_TOKEN: `${c.metadata.name}-${c.metadata.uid}`,
    },
  });
}

const SUFFIX: Record<string, bigint> = {
  "": 1n, k: 1000n, M: 1000n ** 2n, G: 1000n ** 3n, T: 1000n ** 4n, P: 1000n ** 5n, E: 1000n ** 6n,
  Ki: 1024n, Mi: 1024n ** 2n, Gi: 1024n ** 3n, Ti: 1024n ** 4n, Pi: 1024n ** 5n, Ei: 1024n ** 6n,
};

/**
 * A Kubernetes quantity in bytes, rounded up (1.5Gi, 500M, 1e9 is not handled: undefined).
 * Only what storage sizes use; anything else is undefined and the caller leaves it alone.
 */
export function quantityBytes(q: string | number): bigint | undefined {
  const m = /^([0-9]+)(?:\.([0-9]+))?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/.exec(String(q).trim());
  if (m === null) return undefined;
  const mult = SUFFIX[m[3] ?? ""] ?? 1n;
  const frac = m[2] ?? "";
  const scale = 10n ** BigInt(frac.length);
  const num = (BigInt(m[1] ?? "0") * scale + BigInt(frac === "" ? "0" : frac)) * mult;
  return (num + scale - 1n) / scale;
}

/** Members needed for a majority of `voters`. */
export function quorum(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

export function podDisruptionBudget(c: EtcdCluster): KObject {
  return withInputHash({
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: meta(c, names.pdb(c)),
    spec: {
      minAvailable: quorum(effectiveSize(c.spec)),
      selector: { matchLabels: selectorLabels(c) },
    },
  });
}

export function memberImage(c: EtcdCluster, o: BuildOptions): string {
  return `${c.spec.repository ?? o.defaultRepository}:${c.spec.version}`;
}

/** The member container's command: exactly what the image's default CMD runs. */
export const MEMBER_COMMAND = ["node", "/app/dist/node/src/main.js"] as const;

/**
 * The StatefulSet. `replicas` is not derived from spec.size: the reconciler moves it one
 * member at a time, after the matching membership change. Its volumeClaimTemplates are
 * immutable once created; the reconciler sends the live ones back (see applyStatefulSet).
 */
export function statefulSet(c: EtcdCluster, replicas: number, o: BuildOptions): KObject {
  const labels = { ...(c.spec.podTemplate?.metadata?.labels ?? {}), ...commonLabels(c) };
  const ps = c.spec.podTemplate?.spec ?? {};
  const host = `$(POD_NAME).${names.headless(c)}.$(POD_NAMESPACE).svc`;
  const defaultAffinity = {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [{
        weight: 100,
        podAffinityTerm: { topologyKey: "kubernetes.io/hostname", labelSelector: { matchLabels: selectorLabels(c) } },
      }],
    },
  };
  const storage = c.spec.storage;
  const volumes = storage.emptyDir !== undefined
    ? [{ name: DATA_VOLUME, emptyDir: dropUndefined({ medium: storage.emptyDir.medium, sizeLimit: storage.emptyDir.sizeLimit }) }]
    : undefined;
  const claims = storage.emptyDir === undefined
    ? [{
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: DATA_VOLUME, labels: selectorLabels(c) },
      spec: dropUndefined({
        accessModes: ["ReadWriteOnce"],
        storageClassName: storage.storageClassName,
        resources: { requests: { storage: String(storage.size) } },
      }),
    }]
    : undefined;
  const container = dropUndefined({
    name: "etcd",
    image: memberImage(c, o),
    imagePullPolicy: "IfNotPresent",
    command: [...MEMBER_COMMAND],
    args: c.spec.etcdOptions && c.spec.etcdOptions.length > 0 ? [...c.spec.etcdOptions] : undefined,
    env: [
      { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
      { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
      { name: "ETCD_NAME", value: "$(POD_NAME)" },
      { name: "ETCD_DATA_DIR", value: `${DATA_MOUNT}/data` },
      { name: "ETCD_LISTEN_CLIENT_URLS", value: `http://0.0.0.0:${CLIENT_PORT}` },
      { name: "ETCD_ADVERTISE_CLIENT_URLS", value: `http://${host}:${CLIENT_PORT}` },
      { name: "ETCD_LISTEN_PEER_URLS", value: `http://0.0.0.0:${PEER_PORT}` },
      { name: "ETCD_INITIAL_ADVERTISE_PEER_URLS", value: `http://${host}:${PEER_PORT}` },
    ],
    envFrom: [{ configMapRef: { name: names.configMap(c) } }],
    ports: [
      { name: "client", containerPort: CLIENT_PORT, protocol: "TCP" },
      { name: "peer", containerPort: PEER_PORT, protocol: "TCP" },
    ],
    readinessProbe: { httpGet: { path: "/readyz", port: "client" }, periodSeconds: 5, failureThreshold: 3 },
    livenessProbe: { httpGet: { path: "/livez", port: "client" }, initialDelaySeconds: 15, periodSeconds: 10, failureThreshold: 6 },
    resources: c.spec.resources,
    volumeMounts: [{ name: DATA_VOLUME, mountPath: DATA_MOUNT }],
    securityContext: {
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    },
  });
  return withInputHash({
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: meta(c, names.statefulSet(c)),
    spec: dropUndefined({
      replicas,
      serviceName: names.headless(c),
      // Each pod is started and stopped by the reconciler's own pacing; waiting for
      // ordinal order would block replacing demo-0 behind an unhealthy demo-1.
      podManagementPolicy: "Parallel",
      selector: { matchLabels: selectorLabels(c) },
      updateStrategy: { type: "RollingUpdate" },
      template: {
        metadata: { labels, annotations: c.spec.podTemplate?.metadata?.annotations },
        spec: dropUndefined({
          containers: [container],
          affinity: ps.affinity ?? defaultAffinity,
          tolerations: ps.tolerations,
          nodeSelector: ps.nodeSelector,
          priorityClassName: ps.priorityClassName,
          terminationGracePeriodSeconds: 30,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000 },
          volumes,
        }),
      },
      volumeClaimTemplates: claims,
    }),
  });
}

function dropUndefined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Every child whose content follows from the spec alone, in apply order. */
export function specChildren(c: EtcdCluster): KObject[] {
  return [headlessService(c), clientService(c), podDisruptionBudget(c)];
}

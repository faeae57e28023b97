// The operator's Kubernetes calls, on @kubernetes/client-node. Every write of a desired object
// is a server-side apply with one field manager (FIELD_MANAGER) and force, so the operator owns
// exactly the fields it sets and a second writer of the same fields is overruled, not merged.

import * as k8s from "@kubernetes/client-node";
import { API_VERSION, FIELD_MANAGER, GROUP, KIND, PLURAL, VERSION } from "./api.js";
import type { EtcdCluster, EtcdClusterStatus } from "./api.js";
import type { KObject } from "./desired.js";

export interface Kube {
  getCluster(namespace: string, name: string): Promise<EtcdCluster | undefined>;
  get(apiVersion: string, kind: string, namespace: string, name: string): Promise<KObject | undefined>;
  list(apiVersion: string, kind: string, namespace: string, labelSelector: string): Promise<KObject[]>;
  apply(obj: KObject): Promise<KObject>;
  applyStatus(cluster: EtcdCluster, status: EtcdClusterStatus): Promise<void>;
  /** Deletes if present; `uid` guards against deleting a newer object of the same name. */
  delete(apiVersion: string, kind: string, namespace: string, name: string, uid?: string): Promise<void>;
  event(cluster: EtcdCluster, type: "Normal" | "Warning", reason: string, message: string): Promise<void>;
}

export function isStatus(err: unknown, code: number): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === code;
}

const applyHeaders = (): k8s.ConfigurationOptions => k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.ServerSideApply);

export class ClientNodeKube implements Kube {
  private readonly objects: k8s.KubernetesObjectApi;
  private readonly custom: k8s.CustomObjectsApi;
  private readonly core: k8s.CoreV1Api;

  constructor(readonly kc: k8s.KubeConfig, private readonly identity: string) {
    this.objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    this.custom = kc.makeApiClient(k8s.CustomObjectsApi);
    this.core = kc.makeApiClient(k8s.CoreV1Api);
  }

  async getCluster(namespace: string, name: string): Promise<EtcdCluster | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name })) as EtcdCluster;
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  async get(apiVersion: string, kind: string, namespace: string, name: string): Promise<KObject | undefined> {
    try {
      return (await this.objects.read({ apiVersion, kind, metadata: { name, namespace } })) as unknown as KObject;
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  async list(apiVersion: string, kind: string, namespace: string, labelSelector: string): Promise<KObject[]> {
    const r = await this.objects.list(apiVersion, kind, namespace, undefined, undefined, undefined, undefined, labelSelector);
    // Items of a typed list come without apiVersion/kind; put them back.
    return r.items.map((i) => ({ ...(i as unknown as KObject), apiVersion, kind }));
  }

  async apply(obj: KObject): Promise<KObject> {
    return (await this.objects.patch(obj as k8s.KubernetesObject, undefined, undefined, FIELD_MANAGER, true, k8s.PatchStrategy.ServerSideApply)) as unknown as KObject;
  }

  async applyStatus(cluster: EtcdCluster, status: EtcdClusterStatus): Promise<void> {
    const body = { apiVersion: API_VERSION, kind: KIND, metadata: { name: cluster.metadata.name, namespace: cluster.metadata.namespace }, status };
    await this.custom.patchNamespacedCustomObjectStatus({
      group: GROUP, version: VERSION, namespace: cluster.metadata.namespace, plural: PLURAL, name: cluster.metadata.name,
      body, fieldManager: FIELD_MANAGER, force: true,
    }, applyHeaders());
  }

  async delete(apiVersion: string, kind: string, namespace: string, name: string, uid?: string): Promise<void> {
    try {
      const body: k8s.V1DeleteOptions = uid !== undefined ? { preconditions: { uid } } : {};
      await this.objects.delete({ apiVersion, kind, metadata: { name, namespace } }, undefined, undefined, undefined, undefined, "Background", body);
    } catch (err) {
      if (isStatus(err, 404) || isStatus(err, 409)) return;
      throw err;
    }
  }

  async event(cluster: EtcdCluster, type: "Normal" | "Warning", reason: string, message: string): Promise<void> {
    const now = new Date();
    await this.core.createNamespacedEvent({
      namespace: cluster.metadata.namespace,
      body: {
        metadata: { generateName: `${cluster.metadata.name}.`, namespace: cluster.metadata.namespace },
        involvedObject: { apiVersion: API_VERSION, kind: KIND, name: cluster.metadata.name, namespace: cluster.metadata.namespace, uid: cluster.metadata.uid },
        type, reason, message,
        firstTimestamp: now, lastTimestamp: now, count: 1,
        source: { component: "etcd-ts-operator" },
        reportingComponent: "etcd-ts-operator",
        reportingInstance: this.identity,
      },
    });
  }
}

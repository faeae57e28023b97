// Versions this server reports. We implement etcd's v3.6 API; kube-apiserver
// reads Status().version to decide which features (watch progress requests)
// it may use, so this must be a real etcd version whose behaviour we match.
export const SERVER_VERSION = "3.6.0";
export const CLUSTER_VERSION = "3.6.0";
export const STORAGE_VERSION = "3.6.0";
/** etcd-ts's own release. */
export const ETCDTS_VERSION = "0.1.0";

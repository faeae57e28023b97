// /metrics (Prometheus text from prom-client) and /healthz for the operator's own pod.
// /healthz fails when the work loop has not finished a pass for too long while there is
// work, so the kubelet restarts a stuck operator.

import http from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class OperatorMetrics {
  readonly registry = new Registry();
  readonly passes = new Counter({ name: "etcdts_operator_reconcile_total", help: "Reconcile passes by result.", labelNames: ["result"] as const, registers: [this.registry] });
  readonly passSeconds = new Histogram({ name: "etcdts_operator_reconcile_duration_seconds", help: "Duration of reconcile passes.", buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry] });
  readonly membershipChanges = new Counter({ name: "etcdts_operator_membership_changes_total", help: "Membership changes made, by kind.", labelNames: ["kind"] as const, registers: [this.registry] });
  readonly leader = new Gauge({ name: "etcdts_operator_leader", help: "1 while this replica holds the leader lease.", registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}

export interface Health {
  /** Empty when healthy, else why not. */
  (): string;
}

export function startHttp(port: number, host: string, metrics: OperatorMetrics, health: Health): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz" || path === "/livez" || path === "/readyz") {
      const why = health();
      res.writeHead(why === "" ? 200 : 503, { "content-type": "text/plain" });
      res.end(why === "" ? "ok\n" : `${why}\n`);
      return;
    }
    if (path === "/metrics") {
      metrics.registry.metrics().then((text) => {
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        res.end(text);
      }, (err: unknown) => {
        res.writeHead(500);
        res.end(String(err));
      });
      return;
    }
    res.writeHead(404);
    res.end();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}

export const boundPort = (s: http.Server): number => (s.address() as AddressInfo).port;

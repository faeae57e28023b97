// Runs the real kubectl against a control plane's admin kubeconfig.

import { spawn, type ChildProcess } from "node:child_process";
import { tool } from "./tools.js";

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export class Kubectl {
  constructor(private readonly kubeconfig: string) {}

  private env(): NodeJS.ProcessEnv {
    return { ...process.env, KUBECONFIG: this.kubeconfig };
  }

  /** Runs kubectl to completion (asynchronously, so watches keep flowing meanwhile). */
  run(args: readonly string[], input?: string): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(tool("kubectl"), args, { env: this.env(), stdio: ["pipe", "pipe", "pipe"] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on("data", (c: Buffer) => out.push(c));
      child.stderr.on("data", (c: Buffer) => err.push(c));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }));
      child.stdin.end(input ?? "");
    });
  }

  /** Like run, but a nonzero exit is an error carrying kubectl's stderr. */
  async ok(args: readonly string[], input?: string): Promise<string> {
    const r = await this.run(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} exited ${r.code}:\n${r.stderr.slice(-2000)}`);
    return r.stdout;
  }

  /** Starts a long-running kubectl (e.g. `get -w`); stdout is collected until stop(). */
  background(args: readonly string[]): Background {
    const child = spawn(tool("kubectl"), args, { env: this.env(), stdio: ["ignore", "pipe", "pipe"] });
    return new Background(child);
  }
}

export class Background {
  private out = "";
  private err = "";
  private readonly closed: Promise<void>;

  constructor(private readonly child: ChildProcess) {
    child.stdout?.on("data", (c: Buffer) => { this.out += c.toString("utf8"); });
    child.stderr?.on("data", (c: Buffer) => { this.err += c.toString("utf8"); });
    this.closed = new Promise((r) => child.once("close", () => r()));
  }

  get stdout(): string { return this.out; }
  get stderr(): string { return this.err; }
  get running(): boolean { return this.child.exitCode === null && this.child.signalCode === null; }

  async stop(): Promise<void> {
    if (this.running) this.child.kill("SIGTERM");
    await this.closed;
  }
}

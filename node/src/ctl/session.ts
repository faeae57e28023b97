// What a running command needs besides its arguments: the global flags (after
// ETCDCTL_* environment variables), the printer for --write-out, a connected
// client, and stdin.
//
// The order of effects follows etcdctl: a command validates its own arguments
// first, then asks for the client (session.client()), which is when the
// environment is read, the output format checked and authentication done.

import { readFileSync } from "node:fs";

import { EtcdClient, toRpcError } from "./client.js";
import type { ClientConfig, TlsConfig } from "./client.js";
import { CtlError, Exit, badFeature } from "./exit.js";
import type { FlagDef, FlagSet, Invocation } from "./flags.js";
import { newPrinter, processSink } from "./format.js";
import type { Printer, Sink } from "./format.js";

export const GLOBAL_FLAGS: readonly FlagDef[] = [
  { name: "cacert", kind: "string", def: "", usage: "verify certificates of TLS-enabled secure servers using this CA bundle" },
  { name: "cert", kind: "string", def: "", usage: "identify secure client using this TLS certificate file" },
  { name: "command-timeout", kind: "duration", def: "5s", usage: "timeout for short running command (excluding dial timeout)" },
  { name: "debug", kind: "bool", def: "false", usage: "enable client-side debug logging" },
  { name: "dial-timeout", kind: "duration", def: "2s", usage: "dial timeout for client connections" },
  { name: "discovery-srv", short: "d", kind: "string", def: "", usage: "domain name to query for SRV records describing cluster endpoints" },
  { name: "discovery-srv-name", kind: "string", def: "", usage: "service name to query when using DNS discovery" },
  { name: "endpoints", kind: "stringSlice", def: "127.0.0.1:2379", usage: "gRPC endpoints" },
  { name: "hex", kind: "bool", def: "false", usage: "print byte strings as hex encoded strings" },
  { name: "insecure-discovery", kind: "bool", def: "true", usage: "accept insecure SRV records describing cluster endpoints" },
  { name: "insecure-skip-tls-verify", kind: "bool", def: "false", usage: "skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)" },
  { name: "insecure-transport", kind: "bool", def: "true", usage: "disable transport security for client connections" },
  { name: "keepalive-time", kind: "duration", def: "2s", usage: "keepalive time for client connections" },
  { name: "keepalive-timeout", kind: "duration", def: "6s", usage: "keepalive timeout for client connections" },
  { name: "key", kind: "string", def: "", usage: "identify secure client using this TLS key file" },
  { name: "password", kind: "string", def: "", usage: "password for authentication (if this option is used, --user option shouldn't include password)" },
  { name: "user", kind: "string", def: "", usage: "username[:password] for authentication (prompt if password is not supplied)" },
  { name: "write-out", short: "w", kind: "string", def: "simple", usage: "set the output format (fields, json, protobuf, simple, table)" },
];

/** Environment variables etcdctl reads itself rather than as flags; never "unrecognized". */
const ENV_NOT_FLAGS = new Set(["ETCDCTL_API", "ETCDCTL_WATCH_KEY", "ETCDCTL_WATCH_RANGE_END"]);

/** capnslog's line prefix, as pkg/flags prints its warnings: "2006-01-02 15:04:05.000000 W | ". */
function capnslogPrefix(level: "W" | "C"): string {
  const nowMs = performance.timeOrigin + performance.now();
  const d = new Date(Math.floor(nowMs));
  const micros = Math.floor((nowMs % 1000) * 1000);
  const p = (n: number, w = 2): string => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(micros, 6)} ${level} | `;
}

/**
 * pkg/flags.SetPflagsFromEnv for the global flags: ETCDCTL_<FLAG> sets a flag
 * not given on the command line; setting both is fatal; other ETCDCTL_*
 * variables are warned about.
 */
export function applyEnv(flags: FlagSet, env: NodeJS.ProcessEnv, sink: Sink): void {
  const used = new Set<string>();
  const shadowed = new Set<string>();
  for (const def of GLOBAL_FLAGS) {
    const key = "ETCDCTL_" + def.name.toUpperCase().replace(/-/g, "_");
    if (flags.changed(def.name)) { shadowed.add(key); continue; }
    const v = env[key];
    if (v === undefined || v === "") continue;
    used.add(key);
    try {
      flags.set(def.name, v);
    } catch {
      // etcdctl ignores the error SetPflagsFromEnv returns: a bad value leaves the default.
    }
  }
  for (const [k, v] of Object.entries(env)) {
    if (used.has(k) || ENV_NOT_FLAGS.has(k)) continue;
    if (shadowed.has(k)) {
      sink.err(capnslogPrefix("C") + `pkg/flags: conflicting environment variable ${JSON.stringify(k)} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)\n`);
      throw new CtlError(Exit.Error, "", true);
    }
    if (k.startsWith("ETCDCTL_")) sink.err(capnslogPrefix("W") + `pkg/flags: unrecognized environment variable ${k}=${v ?? ""}\n`);
  }
}

export class Session {
  private printer: Printer | undefined;
  private readonly clients: EtcdClient[] = [];
  private configured = false;
  private stdinReader: LineReader | undefined;

  constructor(
    readonly inv: Invocation,
    readonly sink: Sink = processSink,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  get args(): string[] {
    return this.inv.args;
  }
  get flags(): FlagSet {
    return this.inv.flags;
  }

  /** --command-timeout in milliseconds. */
  get commandTimeoutMs(): number {
    return this.flags.duration("command-timeout") / 1e6;
  }

  /** Reads the environment and checks --write-out (etcdctl's clientConfigFromCmd). */
  configure(): void {
    if (this.configured) return;
    this.configured = true;
    applyEnv(this.flags, this.env, this.sink);
    const p = newPrinter(this.flags.string("write-out"), { hex: this.flags.bool("hex") }, this.sink);
    if (!p) throw badFeature("unsupported output format");
    this.printer = p;
  }

  get display(): Printer {
    this.configure();
    return this.printer as Printer;
  }

  /** The endpoints after the environment is applied. */
  endpoints(): string[] {
    this.configure();
    return this.flags.slice("endpoints");
  }

  async clientConfig(endpoints?: string[]): Promise<ClientConfig> {
    this.configure();
    const f = this.flags;
    if (f.string("discovery-srv") !== "") throw new CtlError(Exit.BadArgs, "DNS discovery (--discovery-srv) is not supported yet");
    for (const name of ["cert", "key", "cacert"]) {
      if (f.changed(name) && f.string(name) === "") throw new CtlError(Exit.BadArgs, `empty string is passed to --${name} option`);
    }
    let tls: TlsConfig | undefined;
    const read = (name: string): Buffer | undefined => {
      const path = f.string(name);
      if (path === "") return undefined;
      try {
        return readFileSync(path);
      } catch (e) {
        throw new CtlError(Exit.BadArgs, `open ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : (e as Error).message}`);
      }
    };
    const ca = read("cacert"), cert = read("cert"), key = read("key");
    // As etcdctl: TLS settings exist if a file is given or --insecure-transport=false;
    // --insecure-skip-tls-verify only loosens such settings (https:// alone verifies).
    if (ca || cert || key || !f.bool("insecure-transport")) {
      tls = { ca, cert, key, insecureSkipVerify: f.bool("insecure-skip-tls-verify") };
    }
    let auth: ClientConfig["auth"];
    const user = f.string("user");
    if (user !== "") {
      const password = f.string("password");
      if (password !== "") auth = { user, password };
      else {
        const i = user.indexOf(":");
        auth = i < 0 ? { user, password: await this.promptPassword() } : { user: user.slice(0, i), password: user.slice(i + 1) };
      }
    }
    return {
      endpoints: endpoints ?? this.endpoints(),
      dialTimeoutMs: f.duration("dial-timeout") / 1e6,
      ...(tls ? { tls } : {}),
      ...(auth ? { auth } : {}),
    };
  }

  /** A connected client for the given endpoints (default: --endpoints). Authentication failures exit 2. */
  async client(endpoints?: string[]): Promise<EtcdClient> {
    const c = new EtcdClient(await this.clientConfig(endpoints));
    this.clients.push(c);
    try {
      await c.connect();
    } catch (e) {
      throw new CtlError(Exit.BadConnection, toRpcError(e).message);
    }
    return c;
  }

  /** speakeasy.Ask("Password: "): the prompt on stdout, the answer read without echo from a terminal. */
  private async promptPassword(): Promise<string> {
    this.sink.out("Password: ");
    const tty = process.stdin as NodeJS.ReadStream;
    const raw = tty.isTTY === true;
    if (raw) tty.setRawMode(true);
    let answer = "";
    try {
      if (raw) {
        for (;;) {
          const ch = (await this.stdin.readChunk()).toString("utf8");
          if (ch === "\u0003") throw new CtlError(Exit.Interrupted, "interrupted");
          const end = ch.search(/[\r\n]/);
          answer += end >= 0 ? ch.slice(0, end) : ch;
          if (end >= 0) break;
        }
      } else {
        answer = (await this.stdin.readLine().catch(() => "")).replace(/\r?\n$/, "");
      }
    } finally {
      if (raw) tty.setRawMode(false);
    }
    this.sink.out("\n");
    return answer;
  }

  /** A client for one endpoint sharing `base`'s authentication (closed with the session). */
  clientFor(base: EtcdClient, endpoint: string): EtcdClient {
    const c = base.forEndpoint(endpoint);
    this.clients.push(c);
    return c;
  }

  get stdin(): LineReader {
    this.stdinReader ??= new LineReader(process.stdin);
    return this.stdinReader;
  }

  close(): void {
    for (const c of this.clients) c.close();
    this.stdinReader?.close();
  }
}

/** Thrown by LineReader at end of input (Go's io.EOF). */
export class EOFError extends Error {
  constructor() {
    super("EOF");
  }
}

/**
 * bufio.Reader.ReadString('\n') over a stream: each call returns one line with
 * its newline; a final unterminated line is an EOF error, as in Go.
 */
export class LineReader {
  private buf = Buffer.alloc(0);
  private ended = false;
  private waiter: (() => void) | undefined;
  private readonly onData = (d: Buffer): void => {
    this.buf = Buffer.concat([this.buf, d]);
    this.wake();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake();
  };

  constructor(private readonly stream: NodeJS.ReadableStream) {
    stream.on("data", this.onData);
    stream.on("end", this.onEnd);
    stream.on("error", this.onEnd);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async readLine(): Promise<string> {
    for (;;) {
      const i = this.buf.indexOf(0x0a);
      if (i >= 0) {
        const line = this.buf.subarray(0, i + 1).toString("utf8");
        this.buf = this.buf.subarray(i + 1);
        return line;
      }
      if (this.ended) throw new EOFError();
      await new Promise<void>((r) => { this.waiter = r; });
    }
  }

  /** Whatever input is available next (at least one byte), for raw terminal reads. */
  async readChunk(): Promise<Buffer> {
    while (this.buf.length === 0) {
      if (this.ended) throw new EOFError();
      await new Promise<void>((r) => { this.waiter = r; });
    }
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return b;
  }

  /** Everything until end of input (ioutil.ReadAll). */
  async readAll(): Promise<Buffer> {
    while (!this.ended) await new Promise<void>((r) => { this.waiter = r; });
    const all = this.buf;
    this.buf = Buffer.alloc(0);
    return all;
  }

  close(): void {
    this.stream.removeListener("data", this.onData);
    this.stream.removeListener("end", this.onEnd);
    this.stream.removeListener("error", this.onEnd);
    (this.stream as NodeJS.ReadStream).pause?.();
    (this.stream as { destroy?: () => void }).destroy?.();
  }
}

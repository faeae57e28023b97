// A small typed gRPC client for etcd's v3 API.
//
// Every method of a generated service descriptor (protobuf-es GenService)
// becomes a typed function: unary → Promise, server stream → async iterable,
// bidi stream → duplex. Messages are (de)serialised with protobuf-es
// toBinary/fromBinary; the method path is /<service.typeName>/<method.name>,
// which is etcd's wire contract.
//
// Connection behaviour follows etcd's Go client (clientv3 3.4) as etcdctl
// experiences it:
// - Dialing never fails by itself. A unary call against endpoints that cannot
//   be reached keeps retrying until its deadline (--command-timeout) and then
//   fails with "context deadline exceeded".
// - Several endpoints: a call goes to the first that accepts it; connection
//   failures move on to the next.
// - Errors carrying one of etcd's messages are reported as that message;
//   other gRPC errors as Go prints a status ("rpc error: code = ... desc = ...").

import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";

import { Auth, AuthenticateRequestSchema } from "../../gen/etcdserverpb/rpc_pb.js";
import { Errors } from "../errors.js";

export interface TlsConfig {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly insecureSkipVerify: boolean;
}

export interface ClientConfig {
  /** host:port, optionally with http:// or https:// (https implies TLS). */
  readonly endpoints: readonly string[];
  /** Used for the authentication call made while connecting. */
  readonly dialTimeoutMs: number;
  /** When set, every endpoint uses TLS with these settings. */
  readonly tls?: TlsConfig;
  readonly auth?: { readonly user: string; readonly password: string };
}

export interface CallOpts {
  /** Deadline for the call; undefined means none. */
  readonly timeoutMs?: number;
  /** Extra request metadata (e.g. etcd's "hasleader"). */
  readonly metadata?: Readonly<Record<string, string>>;
}

type UnaryFn<M extends DescMethod> = (req: MessageInitShape<M["input"]>, opts?: CallOpts) => Promise<MessageShape<M["output"]>>;
type ServerStreamFn<M extends DescMethod> = (req: MessageInitShape<M["input"]>, opts?: CallOpts) => Promise<ServerStream<MessageShape<M["output"]>>>;
type BidiFn<M extends DescMethod> = (opts?: CallOpts) => Promise<BidiStream<MessageInitShape<M["input"]>, MessageShape<M["output"]>>>;

type MethodFn<M> = M extends DescMethod
  ? M["methodKind"] extends "unary" ? UnaryFn<M>
    : M["methodKind"] extends "server_streaming" ? ServerStreamFn<M>
      : M["methodKind"] extends "bidi_streaming" ? BidiFn<M>
        : never
  : never;

/** The typed client of one service: a function per method, keyed by the method's localName. */
export type ServiceClient<S extends DescService> = { readonly [K in keyof S["method"]]: MethodFn<S["method"][K]> };

export interface ServerStream<O> extends AsyncIterable<O> {
  cancel(): void;
}

export interface BidiStream<I, O> extends AsyncIterable<O> {
  send(msg: I): void;
  /** Half-close: no more requests. */
  end(): void;
  cancel(): void;
}

/** A gRPC failure as the Go client would describe it. */
export class RpcError extends Error {
  override readonly name = "RpcError";
  constructor(
    readonly code: number,
    readonly details: string,
    message: string,
  ) {
    super(message);
  }
}

const etcdMessages = new Set<string>(Object.values(Errors).map((e) => e.message));
const goCodeNames = [
  "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
  "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
  "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
];

/** Converts a grpc-js error into what clientv3 returns (rpctypes.Error + toErr). */
export function toRpcError(err: unknown): RpcError {
  if (err instanceof RpcError) return err;
  const e = err as Partial<grpc.ServiceError>;
  if (typeof e.code !== "number") {
    return new RpcError(grpc.status.UNKNOWN, String(err), err instanceof Error ? err.message : String(err));
  }
  const details = e.details ?? "";
  if (etcdMessages.has(details)) return new RpcError(e.code, details, details);
  if (e.code === grpc.status.DEADLINE_EXCEEDED) return new RpcError(e.code, details, "context deadline exceeded");
  if (e.code === grpc.status.CANCELLED) return new RpcError(e.code, details, "context canceled");
  return new RpcError(e.code, details, `rpc error: code = ${goCodeNames[e.code] ?? e.code} desc = ${details}`);
}

/** "context deadline exceeded", as the Go client reports a call that ran out of time. */
export const deadlineExceeded = (): RpcError =>
  new RpcError(grpc.status.DEADLINE_EXCEEDED, "", "context deadline exceeded");

/** A connection-level failure (no server answered), as opposed to an error sent by etcd. */
function isConnectionFailure(err: grpc.ServiceError): boolean {
  return err.code === grpc.status.UNAVAILABLE && !etcdMessages.has(err.details);
}

const channelOptions: grpc.ChannelOptions = {
  "grpc.max_receive_message_length": -1,
  "grpc.max_send_message_length": -1,
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1000,
  "grpc.enable_retries": 0,
};

/** "127.0.0.1:2379", "http://h:p" or "https://h:p" → gRPC target and whether TLS is implied. */
export function parseEndpoint(ep: string): { target: string; secure: boolean } {
  if (ep.startsWith("https://")) return { target: ep.slice(8).replace(/\/+$/, ""), secure: true };
  if (ep.startsWith("http://")) return { target: ep.slice(7).replace(/\/+$/, ""), secure: false };
  if (ep.startsWith("unix://") || ep.startsWith("unixs://")) return { target: `unix:${ep.replace(/^unixs?:\/\//, "")}`, secure: ep.startsWith("unixs") };
  return { target: ep, secure: false };
}

function credentialsFor(secure: boolean, tls: TlsConfig | undefined): grpc.ChannelCredentials {
  if (!secure && !tls) return grpc.credentials.createInsecure();
  const verify = tls?.insecureSkipVerify ? { checkServerIdentity: (): undefined => undefined, rejectUnauthorized: false } : {};
  return grpc.credentials.createSsl(tls?.ca ?? null, tls?.key ?? null, tls?.cert ?? null, verify);
}

/** One gRPC channel per endpoint; calls are routed through pick(). */
export class EtcdClient {
  private readonly channels: { endpoint: string; client: grpc.Client }[];
  private token: string | undefined;
  private authDone = false;

  constructor(private readonly cfg: ClientConfig) {
    if (cfg.endpoints.length === 0) throw new Error("no endpoints");
    this.channels = cfg.endpoints.map((endpoint) => {
      const { target, secure } = parseEndpoint(endpoint);
      return { endpoint, client: new grpc.Client(target, credentialsFor(secure, cfg.tls), channelOptions) };
    });
  }

  get endpoints(): readonly string[] {
    return this.cfg.endpoints;
  }

  /** A client for one endpoint (same credentials and auth token; no new authentication). */
  forEndpoint(endpoint: string): EtcdClient {
    const c = new EtcdClient({ ...this.cfg, endpoints: [endpoint] });
    c.token = this.token;
    c.authDone = true;
    return c;
  }

  /** Typed methods of a service. */
  service<S extends DescService>(svc: S): ServiceClient<S> {
    const out: Record<string, unknown> = {};
    for (const m of svc.methods) {
      const path = `/${svc.typeName}/${m.name}`;
      if (m.methodKind === "unary") {
        out[m.localName] = (req: Record<string, unknown>, opts?: CallOpts) => this.unary(path, m.input, m.output, req, opts);
      } else if (m.methodKind === "server_streaming") {
        out[m.localName] = (req: Record<string, unknown>, opts?: CallOpts) => this.serverStream(path, m.input, m.output, req, opts);
      } else if (m.methodKind === "bidi_streaming") {
        out[m.localName] = (opts?: CallOpts) => this.bidi(path, m.input, m.output, opts);
      }
    }
    return out as ServiceClient<S>;
  }

  close(): void {
    for (const c of this.channels) c.client.close();
  }

  /**
   * Authenticates if a user was configured (clientv3 does this while
   * connecting). Failures are reported by the caller as a connection error.
   */
  async connect(): Promise<void> {
    if (this.authDone || !this.cfg.auth) return;
    this.authDone = true;
    const resp = await this.unary(`/${Auth.typeName}/Authenticate`, AuthenticateRequestSchema, Auth.method.authenticate.output,
      { name: this.cfg.auth.user, password: this.cfg.auth.password }, { timeoutMs: this.cfg.dialTimeoutMs }, false);
    this.token = resp.token;
  }

  private metadata(waitForReady: boolean, extra?: Readonly<Record<string, string>>): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.token) md.set("token", this.token);
    for (const [k, v] of Object.entries(extra ?? {})) md.set(k, v);
    if (waitForReady) md.setOptions({ waitForReady: true });
    return md;
  }

  private async unary<I extends DescMessage, O extends DescMessage>(
    path: string, input: I, output: O, req: MessageInitShape<I>, opts?: CallOpts, withAuth = true,
  ): Promise<MessageShape<O>> {
    if (withAuth) await this.connect();
    const deadline = opts?.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
    const msg = create(input, req);
    const serialize = (m: MessageShape<I>): Buffer => Buffer.from(toBinary(input, m));
    const deserialize = (b: Buffer): MessageShape<O> => fromBinary(output, b);
    for (let round = 0; ; round++) {
      for (const ch of this.channels) {
        if (Date.now() >= deadline) throw deadlineExceeded();
        try {
          return await new Promise<MessageShape<O>>((resolve, reject) => {
            ch.client.makeUnaryRequest(path, serialize, deserialize, msg, this.metadata(false, opts?.metadata),
              { deadline: deadline === Infinity ? Infinity : new Date(deadline) },
              (err, value) => (err || value === undefined ? reject(err) : resolve(value)));
          });
        } catch (err) {
          const se = err as grpc.ServiceError;
          if (!isConnectionFailure(se)) throw toRpcError(se);
        }
      }
      // Nobody answered: back off a little and try again until the deadline.
      await sleep(Math.min(50 * (round + 1), 500, Math.max(0, deadline - Date.now())));
    }
  }

  /** Waits (up to timeoutMs) for a connection to some endpoint; false if none came up. */
  async ready(timeoutMs: number): Promise<boolean> {
    return this.pickReady(Date.now() + timeoutMs, true).then(() => true, () => false);
  }

  /** Picks the first endpoint whose channel becomes ready (clientv3 waits for one indefinitely). */
  private async pickReady(deadline: number, always = false): Promise<grpc.Client> {
    const only = this.channels[0];
    if (this.channels.length === 1 && only && !always) return only.client;
    for (;;) {
      const attempt = Math.min(deadline, Date.now() + Math.max(this.cfg.dialTimeoutMs, 100));
      const ready = await Promise.any(this.channels.map((ch) => new Promise<grpc.Client>((resolve, reject) => {
        ch.client.waitForReady(new Date(attempt), (err) => (err ? reject(err) : resolve(ch.client)));
      }))).catch(() => undefined);
      if (ready) return ready;
      if (Date.now() >= deadline) throw deadlineExceeded();
    }
  }

  private async serverStream<I extends DescMessage, O extends DescMessage>(
    path: string, input: I, output: O, req: MessageInitShape<I>, opts?: CallOpts,
  ): Promise<ServerStream<MessageShape<O>>> {
    await this.connect();
    const deadline = opts?.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
    const client = await this.pickReady(deadline);
    const call = client.makeServerStreamRequest(path,
      (m: MessageShape<I>) => Buffer.from(toBinary(input, m)),
      (b: Buffer) => fromBinary(output, b),
      create(input, req), this.metadata(true, opts?.metadata), { deadline: deadline === Infinity ? Infinity : new Date(deadline) });
    return {
      cancel: () => call.cancel(),
      [Symbol.asyncIterator]: () => wrapIterator<MessageShape<O>>(call),
    };
  }

  private async bidi<I extends DescMessage, O extends DescMessage>(
    path: string, input: I, output: O, opts?: CallOpts,
  ): Promise<BidiStream<MessageInitShape<I>, MessageShape<O>>> {
    await this.connect();
    const deadline = opts?.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
    const client = await this.pickReady(deadline);
    const call = client.makeBidiStreamRequest(path,
      (m: MessageShape<I>) => Buffer.from(toBinary(input, m)),
      (b: Buffer) => fromBinary(output, b),
      this.metadata(true, opts?.metadata), { deadline: deadline === Infinity ? Infinity : new Date(deadline) });
    return {
      send: (m) => { call.write(create(input, m)); },
      end: () => call.end(),
      cancel: () => call.cancel(),
      [Symbol.asyncIterator]: () => wrapIterator<MessageShape<O>>(call),
    };
  }
}

/** The stream's messages; a gRPC error ends iteration by throwing an RpcError. */
async function* wrapIterator<O>(call: AsyncIterable<unknown>): AsyncGenerator<O> {
  try {
    for await (const m of call) yield m as O;
  } catch (err) {
    throw toRpcError(err);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

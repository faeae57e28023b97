// Serves registry services (registry.ts) on a @grpc/grpc-js server: the one
// place where handler results and errors become gRPC messages and statuses.

import { fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import { WatchResponseSchema, type WatchResponse } from "../../../gen/etcdserverpb/rpc_pb.js";
import { Code, EtcdError, Errors, toStatus } from "../../errors.js";
import { encodeWatchResponse } from "./watch-encode.js";
import type { AnyServiceImpl, BidiHandler, CallContext, ServerStreamHandler, UnaryHandler } from "../registry.js";

function serializer(schema: DescMessage) {
  // Watch responses fan out to many watchers with shared parts: encode those once.
  if (schema.typeName === WatchResponseSchema.typeName) return (msg: unknown) => toBuffer(encodeWatchResponse(msg as WatchResponse));
  return (msg: unknown) => Buffer.from(toBinary(schema, msg as never));
}

function toBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * A request that failed to decode. grpc-js would answer a throwing
 * deserializer with its own text; etcd (grpc-go) answers Internal with
 * "grpc: error unmarshalling request: <reason>", so the handler wrapper
 * answers that instead.
 */
class Undecodable {
  constructor(readonly reason: string) {}
}

/**
 * The grpc.Server option for etcd's gRPC receive limit, `limit` =
 * --max-request-bytes + 512 KiB. grpc-js refuses a larger request from its
 * 5-byte length prefix (nothing buffered), as grpc-go does, with ResourceExhausted
 * and, patched (patches/@grpc+grpc-js+*.patch: grpc-js has no option for the text),
 * grpc-go's "grpc: received message larger than max (N vs. LIMIT)".
 */
export function receiveLimit(limit: number): grpc.ServerOptions {
  return { "grpc.max_receive_message_length": limit };
}

function deserializer(schema: DescMessage) {
  return (buf: Buffer) => {
    try {
      return fromBinary(schema, buf);
    } catch (err) {
      return new Undecodable(err instanceof Error ? err.message : String(err));
    }
  };
}

function undecodable(req: unknown): Partial<grpc.StatusObject> | undefined {
  if (!(req instanceof Undecodable)) return undefined;
  return { code: grpc.status.INTERNAL, details: `grpc: error unmarshalling request: ${req.reason}` };
}

/**
 * Client messages of a stream; an undecodable one ends the stream with etcd's
 * error. The client half-closing ends the iteration but not the call: a
 * Readable's default iterator destroys the stream when it ends, which would
 * close the send side too (a watch stream must keep delivering after the
 * client's CloseSend, as in etcd).
 */
async function* decoded(call: grpc.ServerDuplexStream<unknown, unknown>): AsyncGenerator<unknown> {
  for await (const m of call.iterator({ destroyOnReturn: false })) {
    const bad = undecodable(m);
    if (bad !== undefined) throw Object.assign(new Error(bad.details), bad);
    yield m;
  }
}

type AnyCall = { metadata: grpc.Metadata; on(event: string, fn: () => void): unknown };

function contextOf(call: AnyCall): CallContext {
  // Metadata is copied only when a handler reads it (none of the hot ones do).
  let metadata: Map<string, string> | undefined;
  // The signal is made only for handlers that ask for it (watch, lock, election,
  // health): a unary KV call never does, and an AbortController per call plus the
  // DOMException that abort() builds cost measurable time under load.
  let ac: AbortController | undefined;
  let ended = false;
  const end = () => {
    ended = true;
    if (ac !== undefined && !ac.signal.aborted) ac.abort(CALL_ENDED);
  };
  call.on("cancelled", end);
  call.on("close", end);
  return {
    get metadata(): ReadonlyMap<string, string> {
      if (metadata === undefined) {
        metadata = new Map<string, string>();
        for (const [k, v] of Object.entries(call.metadata.getMap())) metadata.set(k.toLowerCase(), typeof v === "string" ? v : v.toString());
      }
      return metadata;
    },
    get signal(): AbortSignal {
      if (ac === undefined) {
        ac = new AbortController();
        if (ended) ac.abort(CALL_ENDED);
      }
      return ac.signal;
    },
  };
}

/** The abort reason of every call's signal (one shared value instead of a DOMException per call). */
const CALL_ENDED = new Error("the call ended");

function grpcError(err: unknown, log: Logger): Partial<grpc.StatusObject> {
  const s = toStatus(err);
  if (!(err instanceof EtcdError)) log.error({ err }, "unexpected error in a handler");
  return { code: s.code as grpc.status, details: s.message };
}

export interface BindOptions {
  /**
   * Whether the member knows a leader. A call carrying etcd's "hasleader: true"
   * metadata (clientv3.WithRequireLeader) fails with "etcdserver: no leader"
   * without one, as etcd's interceptors do.
   */
  hasLeader?: () => boolean;
}

function noLeader(call: AnyCall, opts: BindOptions): boolean {
  if (opts.hasLeader === undefined || opts.hasLeader()) return false;
  const v = call.metadata.get("hasleader");
  return v.length > 0 && String(v[0]) === "true";
}

/**
 * Adds every service and its implemented methods to the server (created with
 * receiveLimit(...) for etcd's receive limit). A method without a handler is not
 * registered: the patched grpc-js answers a path it has no handler for as grpc-go
 * does, Unimplemented "unknown method M for service S" ("unknown service S" when
 * no method of S is registered).
 */
export function bindServices(server: grpc.Server, services: AnyServiceImpl[], log: Logger, opts: BindOptions = {}): void {
  for (const impl of services) {
    const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const m of impl.service.methods) {
      const h = impl.handlers[m.localName];
      if (h === undefined) continue;
      const path = `/${impl.service.typeName}/${m.name}`;
      definition[m.localName] = {
        path,
        requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
        responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
        requestSerialize: serializer(m.input),
        requestDeserialize: deserializer(m.input),
        responseSerialize: serializer(m.output),
        responseDeserialize: deserializer(m.output),
      };
      switch (m.methodKind) {
        case "unary":
          implementation[m.localName] = ((call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
            const bad = undecodable(call.request);
            if (bad !== undefined) {
              cb(bad);
              return;
            }
            if (noLeader(call, opts)) {
              cb(grpcError(Errors.NoLeader, log));
              return;
            }
            (h as UnaryHandler<unknown, unknown>)(call.request, contextOf(call)).then(
              (resp) => cb(null, resp),
              (err: unknown) => cb(grpcError(err, log)),
            );
          }) as grpc.UntypedHandleCall;
          break;
        case "server_streaming":
          implementation[m.localName] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
            const bad = undecodable(call.request);
            if (bad !== undefined) {
              call.destroy(Object.assign(new Error(bad.details), bad));
              return;
            }
            if (noLeader(call, opts)) {
              endWithError(call, Errors.NoLeader, log);
              return;
            }
            const stream = { send: (msg: unknown) => writeAwait(call, msg) };
            (h as ServerStreamHandler<unknown, unknown>)(call.request, stream, contextOf(call)).then(
              () => call.end(),
              (err: unknown) => endWithError(call, err, log),
            );
          }) as grpc.UntypedHandleCall;
          break;
        case "bidi_streaming":
          implementation[m.localName] = ((call: grpc.ServerDuplexStream<unknown, unknown>) => {
            if (noLeader(call, opts)) {
              endWithError(call, Errors.NoLeader, log);
              return;
            }
            const stream = { send: (msg: unknown) => writeAwait(call, msg), requests: decoded(call) };
            (h as BidiHandler<unknown, unknown>)(stream, contextOf(call)).then(
              () => call.end(),
              (err: unknown) => endWithError(call, err, log),
            );
          }) as grpc.UntypedHandleCall;
          break;
        default:
          throw new Error(`bind: unsupported method kind ${m.methodKind}`);
      }
    }
    server.addService(definition as grpc.ServiceDefinition, implementation);
  }
}

/** Writes one message; resolves when the stream can take more (backpressure). */
function writeAwait(call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>, msg: unknown): Promise<void> {
  if (call.destroyed || call.writableEnded) return Promise.reject(new EtcdError(Code.Canceled, "stream closed"));
  if (call.write(msg)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onDrain = () => { cleanup(); resolve(); };
    const onClose = () => { cleanup(); reject(new EtcdError(Code.Canceled, "stream closed")); };
    const cleanup = () => { call.off("drain", onDrain); call.off("close", onClose); call.off("error", onClose); };
    call.on("drain", onDrain);
    call.on("close", onClose);
    call.on("error", onClose);
  });
}

function endWithError(call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>, err: unknown, log: Logger): void {
  if (call.destroyed) return;
  const st = grpcError(err, log);
  call.destroy(Object.assign(new Error(st.details), st));
}

// Minimal typed gRPC plumbing over @grpc/grpc-js with protobuf-es v2 schemas:
// the exact request and response messages of node/gen go on the wire, and a
// failure surfaces as the server's gRPC code and message, untouched.

import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from "@bufbuild/protobuf";

/** A failed call: the server's (or transport's) gRPC status code and message. */
export class GrpcCallError extends Error {
  override readonly name = "GrpcCallError";
  constructor(
    readonly code: number,
    readonly details: string,
    readonly metadata?: Record<string, unknown>,
  ) {
    super(`gRPC ${code}: ${details}`);
  }
}

export function methodPath(m: DescMethod): string {
  return `/${m.parent.typeName}/${m.name}`;
}

function serializer<D extends DescMessage>(schema: D) {
  return (msg: MessageShape<D>): Buffer => Buffer.from(toBinary(schema, msg));
}
function deserializer<D extends DescMessage>(schema: D) {
  return (buf: Buffer): MessageShape<D> => fromBinary(schema, buf);
}

export function toCallError(err: unknown): GrpcCallError {
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  if (typeof e.code === "number") {
    return new GrpcCallError(e.code, typeof e.details === "string" ? e.details : String(e.message));
  }
  return new GrpcCallError(2, err instanceof Error ? err.message : String(err));
}

export interface GrpcConnOptions {
  /** Per-call deadline in ms (default 30 s). */
  readonly deadlineMs?: number;
}

/** One channel to one server. Close it when done. */
export class GrpcConn {
  readonly client: grpc.Client;
  private readonly deadlineMs: number;

  constructor(readonly target: string, opts: GrpcConnOptions = {}) {
    this.deadlineMs = opts.deadlineMs ?? 30_000;
    this.client = new grpc.Client(target, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": -1,
      "grpc.max_send_message_length": -1,
      "grpc.enable_retries": 0,
    });
  }

  deadline(ms?: number): Date {
    return new Date(Date.now() + (ms ?? this.deadlineMs));
  }

  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethod & { input: I; output: O },
    req: MessageInitShape<I>,
    opts: { metadata?: Record<string, string>; deadlineMs?: number } = {},
  ): Promise<MessageShape<O>> {
    const msg = create(method.input, req) as MessageShape<I>;
    return new Promise((resolve, reject) => {
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
      this.client.makeUnaryRequest(
        methodPath(method),
        serializer(method.input),
        deserializer(method.output),
        msg,
        md,
        { deadline: this.deadline(opts.deadlineMs) },
        (err, res) => {
          if (err) reject(toCallError(err));
          else if (res === undefined) reject(new GrpcCallError(13, "no response message"));
          else resolve(res as MessageShape<O>);
        },
      );
    });
  }

  /** Sends raw bytes as the request of a unary method; returns the raw response bytes. */
  rawUnary(path: string, body: Buffer, deadlineMs?: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        body,
        new grpc.Metadata(),
        { deadline: this.deadline(deadlineMs) },
        (err, res) => (err ? reject(toCallError(err)) : resolve(res ?? Buffer.alloc(0))),
      );
    });
  }

  serverStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethod & { input: I; output: O },
    req: MessageInitShape<I>,
    deadlineMs?: number,
  ): grpc.ClientReadableStream<MessageShape<O>> {
    const msg = create(method.input, req) as MessageShape<I>;
    return this.client.makeServerStreamRequest(
      methodPath(method),
      serializer(method.input),
      deserializer(method.output),
      msg,
      new grpc.Metadata(),
      { deadline: this.deadline(deadlineMs) },
    );
  }

  bidi<I extends DescMessage, O extends DescMessage>(
    method: DescMethod & { input: I; output: O },
    metadata?: Record<string, string>,
  ): grpc.ClientDuplexStream<MessageShape<I>, MessageShape<O>> {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(metadata ?? {})) md.set(k, v);
    return this.client.makeBidiStreamRequest(methodPath(method), serializer(method.input), deserializer(method.output), md, {});
  }

  close(): void {
    this.client.close();
  }
}

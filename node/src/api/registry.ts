// The contract between the server's API handlers and the transports that carry
// them. A handler is written once and served twice: by the gRPC binding
// (grpc.ts) and by the JSON gateway (http/gateway.ts). Handlers never see the
// transport; they get messages, a context, and (for streams) a Stream.
//
// Errors: a handler throws (or rejects with) an EtcdError from errors.ts; the
// transport translates it once, through toStatus().

import type { DescMessage, DescMethod, DescService, MessageShape } from "@bufbuild/protobuf";

/** What a handler may know of the call: metadata (lower-case keys) and cancellation. */
export interface CallContext {
  /** Request metadata / HTTP headers, keys lower-cased; first value only. */
  readonly metadata: ReadonlyMap<string, string>;
  /** Aborted when the client goes away or the call is cancelled. */
  readonly signal: AbortSignal;
}

/**
 * The server side of a stream. send() resolves when the transport has taken
 * the message and is ready for more (it honours backpressure: a handler that
 * awaits send() never buffers without bound).
 */
export interface ServerStream<O> {
  send(msg: O): Promise<void>;
}

/** A bidirectional stream: client messages in order, until the client half-closes. */
export interface BidiStream<I, O> extends ServerStream<O> {
  readonly requests: AsyncIterable<I>;
}

export type UnaryHandler<I, O> = (req: I, ctx: CallContext) => Promise<O>;
/** Resolves when the server is done sending; rejects to end the stream with an error. */
export type ServerStreamHandler<I, O> = (req: I, stream: ServerStream<O>, ctx: CallContext) => Promise<void>;
export type BidiHandler<I, O> = (stream: BidiStream<I, O>, ctx: CallContext) => Promise<void>;

type Handlers<S extends DescService> = {
  [K in keyof S["method"]]?: S["method"][K] extends DescMethod
    ? S["method"][K]["methodKind"] extends "unary"
      ? UnaryHandler<MessageShape<S["method"][K]["input"]>, MessageShape<S["method"][K]["output"]>>
      : S["method"][K]["methodKind"] extends "server_streaming"
        ? ServerStreamHandler<MessageShape<S["method"][K]["input"]>, MessageShape<S["method"][K]["output"]>>
        : S["method"][K]["methodKind"] extends "bidi_streaming"
          ? BidiHandler<MessageShape<S["method"][K]["input"]>, MessageShape<S["method"][K]["output"]>>
          : never
    : never;
};

/** One implemented service: its descriptor and handlers keyed by the method's localName. */
export interface ServiceImpl<S extends DescService = DescService> {
  readonly service: S;
  readonly handlers: Handlers<S>;
}

/** Untyped view used by transports. */
export interface AnyServiceImpl {
  readonly service: DescService;
  readonly handlers: Record<string, unknown>;
}

export function defineService<S extends DescService>(service: S, handlers: Handlers<S>): AnyServiceImpl {
  return { service, handlers: handlers as Record<string, unknown> };
}

/** Looks up a method's handler; undefined means Unimplemented. */
export function findHandler(impl: AnyServiceImpl, method: DescMethod): unknown {
  return impl.handlers[method.localName];
}

export type { DescMessage, DescMethod, DescService };

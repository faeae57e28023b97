// Exit codes and the one error type commands throw.
//
// etcdctl ends every failure the same way: `Error: <message>` on stderr and a
// fixed exit code per kind of failure (etcdctl/ctlv3/command/error.go). Commands
// here throw CtlError; main.ts prints it and exits. Never print-and-exit inside
// a command.

export const Exit = {
  Success: 0,
  Error: 1,
  BadConnection: 2,
  InvalidInput: 3, // txn and watch input
  BadFeature: 4, // a valid flag with an unsupported value
  Interrupted: 5,
  IO: 6,
  BadArgs: 128,
} as const;
export type ExitCode = (typeof Exit)[keyof typeof Exit];

export class CtlError extends Error {
  override readonly name = "CtlError";
  constructor(
    readonly exitCode: number,
    message: string,
    /** The message was already reported: exit without an `Error:` line. */
    readonly silent = false,
  ) {
    super(message);
  }
}

/** Shorthands for the common cases. */
export const badArgs = (msg: string): CtlError => new CtlError(Exit.BadArgs, msg);
export const badFeature = (msg: string): CtlError => new CtlError(Exit.BadFeature, msg);

#!/usr/bin/env node
// etcd-ts's command line client, in the spirit of etcdctl (v3 API, as
// etcdctl 3.4 behaves): same commands, flags, defaults, output formats, error
// texts and exit codes, so a user of etcdctl can switch.
//
//   node dist/node/src/ctl/main.js [global flags] <command> [flags] [args]
//
// This file builds the command tree and turns failures into etcdctl's
// `Error: ...` lines and exit codes. Commands live in one file per group.

import { pathToFileURL } from "node:url";

import { captureRawArgs } from "./argv.js";
import { endpointCommand, memberCommand } from "./cluster.js";
import { CtlError, Exit } from "./exit.js";
import { CommandTree, FlagError, UnknownCommandError } from "./flags.js";
import type { Command } from "./flags.js";
import { compactionCommand, delCommand, getCommand, putCommand } from "./kv.js";
import { leaseCommand } from "./lease.js";
import { alarmCommand, defragCommand, snapshotCommand } from "./maintenance.js";
import { GLOBAL_FLAGS } from "./session.js";
import { txnCommand } from "./txn.js";
import { watchCommand } from "./watch.js";

/** The etcdctl release whose behaviour this CLI reproduces (printed by `version`). */
export const COMPAT_VERSION = "3.4.23";
export const API_VERSION = "3.4";

const ROOT_NAME = "etcdctl";

const versionCommand: Command = {
  name: "version",
  use: "version",
  short: "Prints the version of etcdctl",
  run: async () => {
    process.stdout.write(`etcdctl version: ${COMPAT_VERSION}\nAPI version: ${API_VERSION}\n`);
  },
};

let tree: CommandTree;

const helpCommand: Command = {
  name: "help",
  use: "help [command]",
  short: "Help about any command",
  run: async (inv) => {
    // `help lease grant`: the help of the named command (the root's if unknown).
    let cmd = tree.root;
    for (const word of inv.args) {
      const next = cmd.children?.find((c) => c.name === word);
      if (!next) break;
      cmd = next;
    }
    process.stdout.write(tree.help(cmd, { version: COMPAT_VERSION, apiVersion: API_VERSION }));
  },
};

export const rootCommand: Command = {
  name: ROOT_NAME,
  use: ROOT_NAME,
  short: "A simple command line client for etcd3.",
  persistentFlags: GLOBAL_FLAGS,
  children: [
    getCommand, putCommand, delCommand, txnCommand, compactionCommand, alarmCommand, defragCommand,
    endpointCommand, memberCommand, snapshotCommand, watchCommand, versionCommand, leaseCommand, helpCommand,
  ],
};
tree = new CommandTree(rootCommand);

/** Runs one command line; resolves to the exit code. Output goes to process.stdout/stderr. */
export async function run(argv: string[]): Promise<number> {
  const meta = { version: COMPAT_VERSION, apiVersion: API_VERSION };
  try {
    const { cmd, rest } = tree.find(argv);
    const inv = tree.parse(cmd, rest);
    if (inv.flags.bool("help") || !cmd.run) {
      process.stdout.write(tree.help(cmd, meta));
      return Exit.Success;
    }
    await cmd.run(inv);
    return Exit.Success;
  } catch (e) {
    if (e instanceof FlagError) {
      // cobra prints the error and the command's usage, then etcdctl reports the error again.
      process.stdout.write(tree.help(e.cmd, meta));
      process.stderr.write(`Error: ${e.message}\n\nError: ${e.message}\n`);
      return Exit.Error;
    }
    if (e instanceof UnknownCommandError) {
      process.stderr.write(`Error: ${e.message}\nRun '${ROOT_NAME} --help' for usage.\nError: ${e.message}\n`);
      return Exit.Error;
    }
    if (e instanceof CtlError) {
      if (!e.silent) process.stderr.write(`Error: ${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
    return Exit.Error;
  }
}

/** Waits until everything written to stdout/stderr has been handed to the OS, then exits. */
function exitAfterFlush(code: number): void {
  let pending = 2;
  const done = (): void => { if (--pending === 0) process.exit(code); };
  process.stdout.write("", done);
  process.stderr.write("", done);
}

const isEntry = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isEntry) {
  // grpc-js sets the TLS server name even for IP addresses, which Node flags as
  // deprecated (DEP0123) on stderr; a CLI's stderr is for the user.
  process.noDeprecation = true;
  // A closed pipe (e.g. `| head`) ends the program quietly, as SIGPIPE ends etcdctl.
  process.stdout.on("error", () => process.exit(Exit.Success));
  captureRawArgs(process.argv.slice(2));
  run(process.argv.slice(2)).then(exitAfterFlush, (e: unknown) => {
    process.stderr.write(`Error: ${String(e)}\n`);
    exitAfterFlush(Exit.Error);
  });
}

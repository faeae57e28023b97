#!/usr/bin/env node
// etcd-ts: one etcd-compatible member. Takes etcd's flags, ETCD_* variables
// and --config-file (see config/README.md).

import pino from "pino";
import { ConfigError, loadConfig } from "./config/config.js";
import { startMember } from "./server/member.js";
import { ETCDTS_VERSION, SERVER_VERSION } from "./version.js";

async function main(): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`etcd-ts: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    throw err;
  }
  if (loaded.kind === "help") {
    process.stdout.write(loaded.text);
    return;
  }
  if (loaded.kind === "version") {
    process.stdout.write(`etcd-ts Version: ${ETCDTS_VERSION}\netcd API Version: ${SERVER_VERSION}\nNode Version: ${process.version}\n`);
    return;
  }
  const cfg = loaded.config;
  const level = cfg.logLevel === "panic" ? "fatal" : cfg.logLevel;
  const dest = cfg.logOutputs.includes("stdout") ? 1 : 2;
  const logger = pino({ level, base: { member: cfg.name } }, pino.destination({ dest, sync: true }));
  for (const w of loaded.warnings) logger.warn(w);
  let member;
  try {
    member = await startMember(cfg, logger, {
      onRemoved: () => {
        logger.warn("the member has been permanently removed from the cluster; exiting");
        process.exit(0);
      },
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`etcd-ts: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    logger.fatal({ err }, "failed to start");
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "received signal; shutting down");
    member.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "error while shutting down");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

void main();

#!/usr/bin/env node
// NIO entry point: in-cluster config inside a pod, else KUBECONFIG. Configuration comes from the environment.
import { ConfigError } from "@nio/runtime";
import { createNio } from "./operator.js";

try {
  const nio = createNio();
  nio.manager.installSignalHandlers();
  nio.manager.logger.info({ version: process.env.npm_package_version }, "NixOS Infrastructure Operator starting");
  await nio.start();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`nio: invalid configuration:\n${err.message}`);
    process.exit(2);
  }
  console.error(`nio: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
}

#!/usr/bin/env node
// NICO entry point. `nico` runs the operator (in-cluster config inside a pod, else KUBECONFIG); `nico render …`
// writes the cluster.nix NICO would render into a copy of a flake directory.
import { ConfigError } from "@nio/runtime";

const [command, ...rest] = process.argv.slice(2);
if (command === "render") {
  const { runRenderCommand } = await import("./cli/render.js");
  process.exitCode = await runRenderCommand(rest, { stdout: process.stdout, stderr: process.stderr });
} else if (command !== undefined && command !== "run") {
  console.error(`nico: unknown command '${command}' (commands: run (default), render)`);
  process.exitCode = 2;
} else {
  try {
    const { createNico } = await import("./operator.js");
    const nico = createNico();
    nico.manager.installSignalHandlers();
    nico.manager.logger.info(
      { version: process.env.npm_package_version },
      "NixOS Infrastructure Cluster Operator starting",
    );
    await nico.start();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`nico: invalid configuration:\n${err.message}`);
      process.exit(2);
    }
    console.error(`nico: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  }
}

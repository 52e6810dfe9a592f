import { readFile, writeFile } from "node:fs/promises";

export interface KubeconfigUser {
  name: string;
  token: string;
}

/**
 * Writes a kubeconfig (as JSON, which every kubeconfig reader accepts as YAML) readable only by its owner:
 * it carries a bearer token.
 */
export async function writeKubeconfig(
  path: string,
  server: string,
  caCertFile: string,
  user: KubeconfigUser,
): Promise<void> {
  const ca = await readFile(caCertFile);
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "testbed", cluster: { server, "certificate-authority-data": ca.toString("base64") } }],
    users: [{ name: user.name, user: { token: user.token } }],
    contexts: [{ name: user.name, context: { cluster: "testbed", user: user.name, namespace: "default" } }],
    "current-context": user.name,
  };
  await writeFile(path, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
}

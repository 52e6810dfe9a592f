import { join } from "node:path";
import type { Testbed } from "./testbed.js";

export function printLab(tb: Testbed, ms: number): void {
  const lines = [
    `testbed up in ${(ms / 1000).toFixed(1)} s — ${tb.dir}`,
    `  API server   ${tb.controlPlane.server}  (kube-apiserver + etcd, RBAC on)`,
    `  kubeconfig   ${tb.controlPlane.kubeconfigPath}   (admin, system:masters)`,
    `  kubectl      ${tb.binaries.kubectl}`,
    `  git server   ${tb.git.url}/<repo>.git   (repos in ${tb.git.rootDir})`,
    `  SSH key      ${tb.operatorKey.privateKeyPath}   (root and deploy on every host)`,
    `  hosts:`,
    ...tb.fleet.hosts.map(
      (h) =>
        `    ${h.name.padEnd(10)} ssh -i ${tb.operatorKey.privateKeyPath} -p ${h.port} root@${h.address}   root fs ${h.rootDir}`,
    ),
    `  environment  source ${join(tb.dir, "env")}`,
  ];
  console.log(lines.join("\n"));
}

import { generateKeyPairSync } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runChecked } from "../util/process.js";

export interface ControlPlanePki {
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  serviceAccountPublicKey: string;
  serviceAccountPrivateKey: string;
}

/**
 * Generates a CA, a serving certificate for 127.0.0.1/localhost and the service-account signing key pair.
 * Keys are created by Node (fast); certificates are signed with the openssl CLI, called with argv arrays.
 */
export async function generatePki(dir: string): Promise<ControlPlanePki> {
  const pki: ControlPlanePki = {
    caCert: join(dir, "ca.crt"),
    caKey: join(dir, "ca.key"),
    servingCert: join(dir, "apiserver.crt"),
    servingKey: join(dir, "apiserver.key"),
    serviceAccountPublicKey: join(dir, "sa.pub"),
    serviceAccountPrivateKey: join(dir, "sa.key"),
  };
  await writePrivateKey(pki.caKey, "ec");
  await writePrivateKey(pki.servingKey, "ec");
  const sa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  await writeFile(pki.serviceAccountPrivateKey, sa.privateKey.export({ type: "pkcs8", format: "pem" }), {
    mode: 0o600,
  });
  await writeFile(pki.serviceAccountPublicKey, sa.publicKey.export({ type: "spki", format: "pem" }));

  await runChecked("openssl", [
    "req",
    "-x509",
    "-new",
    "-key",
    pki.caKey,
    "-out",
    pki.caCert,
    "-days",
    "3650",
    "-sha256",
    "-subj",
    "/CN=nio-testbed-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
  ]);
  const csr = join(dir, "apiserver.csr");
  await runChecked("openssl", [
    "req",
    "-new",
    "-key",
    pki.servingKey,
    "-out",
    csr,
    "-subj",
    "/CN=kube-apiserver",
    "-addext",
    "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc",
    "-addext",
    "extendedKeyUsage=serverAuth",
  ]);
  await runChecked("openssl", [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    pki.caCert,
    "-CAkey",
    pki.caKey,
    "-CAcreateserial",
    "-out",
    pki.servingCert,
    "-days",
    "3650",
    "-sha256",
    "-copy_extensions",
    "copyall",
  ]);
  return pki;
}

async function writePrivateKey(path: string, type: "ec"): Promise<void> {
  const { privateKey } = generateKeyPairSync(type, { namedCurve: "prime256v1" });
  await writeFile(path, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
}

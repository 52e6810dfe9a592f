/**
 * The on-disk layout of one simulated host: its private root filesystem (what `host-init` chroots into) and the
 * files around it that only the testbed sees.
 *
 *   <hostDir>/root/       the host's "/" (private etc, var, run, root, home, nix, tmp; mount points for the rest)
 *   <hostDir>/control/    fault switches, bind-mounted read-only at /opt/testbed/control inside the host
 *   <hostDir>/sshd.log    sshd's log (-e), plus host-init's errors
 *   <hostDir>/host.json   name, address and port, so that a restart (or a later `startHosts` on the same dir) reuses them
 */
import { chmod, chown, lstat, mkdir, readFile, readlink, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { runChecked } from "../util/process.js";

/** uid/gid of the non-root `deploy` user inside every host. */
export const DEPLOY_UID = 1000;
export const DEPLOY_GID = 1000;

/** Where the stand-ins write their JSON-line records, inside a host. */
export const RECORD_DIR = "/var/log/testbed";

/** PATH for SSH sessions and sudo inside a host (the stand-ins come first, as NixOS's /run/current-system/sw/bin would). */
export const HOST_PATH = [
  "/opt/testbed/bin",
  "/run/wrappers/bin",
  "/run/current-system/sw/bin",
  "/usr/local/sbin",
  "/usr/local/bin",
  "/usr/sbin",
  "/usr/bin",
  "/sbin",
  "/bin",
].join(":");

export const HOST_KEY_PATH = "/etc/ssh/ssh_host_ed25519_key";

export interface HostLayout {
  hostDir: string;
  rootDir: string;
  controlDir: string;
  logFile: string;
  stateFile: string;
}

export function hostLayout(hostDir: string): HostLayout {
  return {
    hostDir,
    rootDir: join(hostDir, "root"),
    controlDir: join(hostDir, "control"),
    logFile: join(hostDir, "sshd.log"),
    stateFile: join(hostDir, "host.json"),
  };
}

export type HostUser = "root" | "deploy";

/** Home directory of `user` inside a host. */
export function homeOf(user: HostUser): string {
  return user === "root" ? "/root" : "/home/deploy";
}

export interface PrepareOptions {
  name: string;
  address: string;
  port: number;
  /** Keys for both users' authorized_keys, written only when the host is created. */
  initialAuthorizedKeys: readonly string[];
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

async function dir(path: string, mode: number, owner?: { uid: number; gid: number }): Promise<void> {
  await mkdir(path, { recursive: true });
  await chmod(path, mode);
  if (owner) await chown(path, owner.uid, owner.gid);
}

async function link(target: string, path: string): Promise<void> {
  if (!(await exists(path))) await symlink(target, path);
}

async function file(path: string, content: string, mode = 0o644): Promise<void> {
  await writeFile(path, content);
  await chmod(path, mode);
}

/**
 * Creates or refreshes a host's root filesystem before each start. Files that a host owns (keys, authorized keys,
 * Nix store, generations, records) are created once and then left alone; configuration derived from the host's
 * name, address and port is rewritten; /run is emptied as on a boot.
 */
export async function prepareHost(layout: HostLayout, opts: PrepareOptions): Promise<void> {
  const r = layout.rootDir;
  const fresh = !(await exists(join(r, "etc", "passwd")));
  await dir(layout.controlDir, 0o755);
  await dir(r, 0o755);
  for (const d of ["usr", "dev", "proc", "etc", "var", "home", "nix", "opt"]) await dir(join(r, d), 0o755);
  for (const d of ["bin", "sbin", "lib", "lib64"]) await link(`usr/${d}`, join(r, d));
  for (const d of ["bin", "nix-stubs", "control"]) await dir(join(r, "opt", "testbed", d), 0o755);
  await dir(join(r, "tmp"), 0o1777);
  await dir(join(r, "root"), 0o700);
  await dir(join(r, "root", ".ssh"), 0o700);
  await dir(join(r, "home", "deploy"), 0o755, { uid: DEPLOY_UID, gid: DEPLOY_GID });
  await dir(join(r, "home", "deploy", ".ssh"), 0o700, { uid: DEPLOY_UID, gid: DEPLOY_GID });
  for (const d of ["lib", "log", "cache", "db", "spool"]) await dir(join(r, "var", d), 0o755);
  await dir(join(r, "var", "tmp"), 0o1777);
  await dir(join(r, "var", "empty"), 0o555);
  await dir(join(r, RECORD_DIR), 0o1777);
  await resetRun(r);
  await writeEtc(r, opts);
  if (fresh) {
    for (const user of ["root", "deploy"] as const) {
      await writeAuthorizedKeys(r, user, opts.initialAuthorizedKeys);
    }
  }
  await ensureHostKey(r, opts.name);
}

/** /run is a tmpfs on NixOS: empty it, then recreate what boot would (sshd's dir, /run/current-system). */
async function resetRun(r: string): Promise<void> {
  const run = join(r, "run");
  await rm(run, { recursive: true, force: true });
  await dir(run, 0o755);
  await dir(join(run, "sshd"), 0o755);
  await dir(join(run, "wrappers", "bin"), 0o755);
  // Boot activates the system profile's current generation.
  const profile = join(r, "nix", "var", "nix", "profiles", "system");
  const system = await resolveProfile(r, profile);
  if (system !== undefined) await symlink(system, join(run, "current-system"));
}

async function resolveProfile(r: string, profile: string): Promise<string | undefined> {
  try {
    let target = await readlink(profile);
    if (!target.startsWith("/")) target = join("/nix/var/nix/profiles", target);
    if (target.startsWith("/nix/var/nix/profiles/")) target = await readlink(join(r, target));
    return target;
  } catch {
    return undefined;
  }
}

export async function writeAuthorizedKeys(rootDir: string, user: HostUser, keys: readonly string[]): Promise<void> {
  for (const k of keys) {
    if (k.includes("\n")) throw new Error("an authorized key must be a single line");
  }
  const path = join(rootDir, homeOf(user), ".ssh", "authorized_keys");
  const tmp = `${path}.tmp`;
  await writeFile(tmp, keys.length > 0 ? `${keys.join("\n")}\n` : "");
  await chmod(tmp, 0o600);
  if (user === "deploy") await chown(tmp, DEPLOY_UID, DEPLOY_GID);
  await rename(tmp, path);
}

/** Generates the host's ed25519 key unless it has one (so the key survives restarts). */
export async function ensureHostKey(rootDir: string, name: string): Promise<void> {
  const keyFile = join(rootDir, HOST_KEY_PATH);
  if (await exists(keyFile)) return;
  await generateHostKey(rootDir, name);
}

/** (Re)generates the host's ed25519 key; returns the new public key ("ssh-ed25519 AAAA..."). */
export async function generateHostKey(rootDir: string, name: string): Promise<string> {
  const keyFile = join(rootDir, HOST_KEY_PATH);
  await dir(join(rootDir, "etc", "ssh"), 0o755);
  await rm(keyFile, { force: true });
  await rm(`${keyFile}.pub`, { force: true });
  await runChecked("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `root@${name}`, "-f", keyFile]);
  return readHostPublicKey(rootDir);
}

export async function readHostPublicKey(rootDir: string): Promise<string> {
  const text = await readFile(join(rootDir, `${HOST_KEY_PATH}.pub`), "utf8");
  const [type, blob] = text.trim().split(/\s+/);
  if (!type || !blob) throw new Error(`malformed host public key in ${rootDir}`);
  return `${type} ${blob}`;
}

function sshdConfig(opts: PrepareOptions): string {
  return [
    "# Written by the NIO testbed on every start of this host.",
    `Port ${opts.port}`,
    `ListenAddress ${opts.address}`,
    "AddressFamily inet",
    `HostKey ${HOST_KEY_PATH}`,
    "PidFile /run/sshd.pid",
    "UsePAM no",
    "PermitRootLogin prohibit-password",
    "PubkeyAuthentication yes",
    "AuthenticationMethods publickey",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PermitEmptyPasswords no",
    "AuthorizedKeysFile .ssh/authorized_keys",
    "StrictModes yes",
    "UseDNS no",
    "PrintMotd no",
    "PrintLastLog no",
    "X11Forwarding no",
    "PermitUserEnvironment no",
    "MaxStartups 200",
    "MaxSessions 50",
    "LoginGraceTime 30",
    "LogLevel INFO",
    `SetEnv PATH=${HOST_PATH} NIO_TESTBED_HOST=${opts.name}`,
    "Subsystem sftp internal-sftp",
    "",
  ].join("\n");
}

const PASSWD = [
  "root:x:0:0:root:/root:/bin/bash",
  `deploy:x:${DEPLOY_UID}:${DEPLOY_GID}:NIO deploy user:/home/deploy:/bin/bash`,
  "sshd:x:100:65534:sshd privilege separation:/run/sshd:/usr/sbin/nologin",
  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
  "",
].join("\n");

const GROUP = [
  "root:x:0:",
  "tty:x:5:",
  "wheel:x:10:deploy",
  "nixbld:x:30000:",
  `deploy:x:${DEPLOY_GID}:`,
  "nogroup:x:65534:",
  "",
].join("\n");

// "*" (not "!"): no password can match, but the account is not locked, so sshd with UsePAM=no lets keys in.
const SHADOW = ["root", "deploy", "sshd", "nobody"].map((u) => `${u}:*:19000:0:99999:7:::`).join("\n") + "\n";

const SUDOERS = [
  "# Written by the NIO testbed.",
  "Defaults env_reset",
  "Defaults always_set_home",
  `Defaults secure_path="${HOST_PATH}"`,
  "Defaults !lecture",
  "Defaults !syslog",
  "Defaults !fqdn",
  "root ALL=(ALL:ALL) ALL",
  "deploy ALL=(ALL:ALL) NOPASSWD: ALL",
  "",
].join("\n");

// A minimal PAM stack for sudo (NOPASSWD skips auth; account and session still run), independent of the real /etc.
const PAM_SUDO = [
  "#%PAM-1.0",
  "auth     sufficient pam_rootok.so",
  "auth     required   pam_unix.so",
  "account  required   pam_unix.so",
  "session  required   pam_unix.so",
  "",
].join("\n");

const PAM_OTHER = [
  "#%PAM-1.0",
  "auth required pam_deny.so",
  "account required pam_deny.so",
  "password required pam_deny.so",
  "session required pam_deny.so",
  "",
].join("\n");

const NIX_CONF = [
  "# Written by the NIO testbed: single-user Nix, offline.",
  "sandbox = false",
  "build-users-group =",
  "experimental-features = nix-command flakes",
  "substituters =",
  "",
].join("\n");

async function writeEtc(r: string, opts: PrepareOptions): Promise<void> {
  const etc = join(r, "etc");
  for (const d of ["ssh", "pam.d", "nix", "sudoers.d", "testbed"]) await dir(join(etc, d), 0o755);
  await file(join(etc, "passwd"), PASSWD);
  await file(join(etc, "group"), GROUP);
  await file(join(etc, "shadow"), SHADOW, 0o640);
  await file(join(etc, "gshadow"), "", 0o640);
  await file(join(etc, "shells"), "/bin/sh\n/bin/bash\n/usr/bin/bash\n");
  await file(join(etc, "nsswitch.conf"), "passwd: files\ngroup: files\nshadow: files\nhosts: files\n");
  await file(join(etc, "hostname"), `${opts.name}\n`);
  await file(join(etc, "hosts"), `127.0.0.1 localhost\n${opts.address} ${opts.name}\n`);
  await file(join(etc, "os-release"), 'NAME=NixOS\nID=nixos\nPRETTY_NAME="NixOS (NIO testbed)"\n');
  await file(join(etc, "sudoers"), SUDOERS, 0o440);
  await file(join(etc, "pam.d", "sudo"), PAM_SUDO);
  await file(join(etc, "pam.d", "other"), PAM_OTHER);
  await file(join(etc, "nix", "nix.conf"), NIX_CONF);
  await file(join(etc, "ssh", "sshd_config"), sshdConfig(opts));
  await file(join(etc, "environment"), `PATH="${HOST_PATH}"\n`);
}

/** Pure parts of the SSH layer: quoting (checked against real local shells), host keys, paths, output capture. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

import { expect } from "chai";

import { SshInvalidArgumentError } from "../src/ssh/errors.js";
import { formatHostKey, hostKeyAlgorithms, normalizeHostKey, parseHostKey, sameHostKey } from "../src/ssh/hostkey.js";
import { OutputCollector } from "../src/ssh/output.js";
import { parentPath, remotePath } from "../src/ssh/paths.js";
import { MAX_COMMAND_LENGTH, remoteCommand, shellQuote } from "../src/ssh/quote.js";
import { sudoRefusal } from "../src/ssh/session.js";
import { NASTY_ARGS } from "./support/hosts.js";

const execFileP = promisify(execFile);

async function throughShell(shell: string, args: readonly string[]): Promise<string[]> {
  const script = `printf '%s\\0' ${args.map(shellQuote).join(" ")}`;
  const { stdout } = await execFileP(shell, ["-c", script], { maxBuffer: 10 * 1024 * 1024 });
  return stdout.split("\0").slice(0, -1);
}

describe("ssh: shellQuote", () => {
  for (const shell of ["dash", "bash"]) {
    it(`makes every argument arrive literally and alone through ${shell}`, async () => {
      expect(await throughShell(shell, NASTY_ARGS)).to.deep.equal(NASTY_ARGS);
    });
  }

  it("never leaves a quote or backslash inside single quotes", () => {
    for (const arg of NASTY_ARGS) {
      expect(quotedWordIsPlain(shellQuote(arg)), JSON.stringify(arg)).to.equal(true);
    }
  });

  it("refuses NUL", () => {
    expect(() => shellQuote("a\0b")).to.throw(SshInvalidArgumentError, /NUL/);
  });
});

/** Whether `word` is only '…' runs without a quote or backslash inside, with \' or \\ between them. */
function quotedWordIsPlain(word: string): boolean {
  let i = 0;
  while (i < word.length) {
    if (word[i] === "'") {
      const end = word.indexOf("'", i + 1);
      if (end < 0 || word.slice(i + 1, end).includes("\\")) return false;
      i = end + 1;
    } else if (word[i] === "\\" && (word[i + 1] === "'" || word[i + 1] === "\\")) {
      i += 2;
    } else {
      return false;
    }
  }
  return true;
}

describe("ssh: remoteCommand", () => {
  it("quotes every word, sudo and run id included", () => {
    expect(remoteCommand(["id", "-u"], { sudo: true, runId: "0123456789abcdef" })).to.equal(
      "'sudo' '-n' '--' 'env' 'NIO_RUN_ID=0123456789abcdef' 'id' '-u'",
    );
    expect(remoteCommand(["echo", "$(x)"])).to.equal("'echo' '$(x)'");
  });

  it("refuses an empty command, a program name with '=', NUL anywhere, and oversized command lines", () => {
    expect(() => remoteCommand([])).to.throw(SshInvalidArgumentError);
    expect(() => remoteCommand([""])).to.throw(SshInvalidArgumentError);
    expect(() => remoteCommand(["LD_PRELOAD=/x", "id"])).to.throw(SshInvalidArgumentError, /=/);
    expect(() => remoteCommand(["echo", "a\0"])).to.throw(SshInvalidArgumentError, /NUL/);
    expect(() => remoteCommand(["echo", "x".repeat(MAX_COMMAND_LENGTH)])).to.throw(SshInvalidArgumentError, /long/);
    expect(() => remoteCommand(["id"], { runId: "x; reboot" })).to.throw(SshInvalidArgumentError);
  });
});

describe("ssh: host keys", () => {
  // A real ed25519 public key line and its wire blob.
  const b64 = "AAAAC3NzaC1lZDI1NTE5AAAAIP9V3RzjURv3PCOocPMbUOj6hKg38UculAqapYKID+RT";
  const line = `ssh-ed25519 ${b64}`;

  it("formats the blob ssh2 hands to hostVerifier as an OpenSSH line", () => {
    expect(formatHostKey(Buffer.from(b64, "base64"))).to.equal(line);
    expect(() => formatHostKey(Buffer.from([0, 0, 0, 50, 1, 2]))).to.throw(TypeError);
    expect(() => formatHostKey(Buffer.alloc(0))).to.throw(TypeError);
  });

  it("compares type and key only", () => {
    expect(sameHostKey(line, `${line} root@somewhere`)).to.equal(true);
    expect(sameHostKey(`  ${line}  `, line)).to.equal(true);
    expect(sameHostKey(line, `ssh-rsa ${b64}`)).to.equal(false); // type does not match the blob
    expect(sameHostKey(line, "garbage")).to.equal(false);
    expect(sameHostKey("", "")).to.equal(false);
    const other = Buffer.from(b64, "base64");
    other.writeUInt8(other.readUInt8(other.length - 1) ^ 1, other.length - 1);
    expect(sameHostKey(line, `ssh-ed25519 ${other.toString("base64")}`)).to.equal(false);
  });

  it("parses and normalizes, refusing malformed lines", () => {
    expect(parseHostKey(line)?.type).to.equal("ssh-ed25519");
    expect(normalizeHostKey(`${line} comment here`)).to.equal(line);
    expect(() => normalizeHostKey("ssh-ed25519 !!!")).to.throw(SshInvalidArgumentError);
    expect(parseHostKey("ssh-ed25519")).to.equal(undefined);
  });

  it("offers the expected key's algorithms first, and still the others", () => {
    expect(hostKeyAlgorithms(undefined)[0]).to.equal("ssh-ed25519");
    const rsa = hostKeyAlgorithms(
      `ssh-rsa ${Buffer.concat([lenPrefixed("ssh-rsa"), Buffer.alloc(8)]).toString("base64")}`,
    );
    expect(rsa.slice(0, 3)).to.deep.equal(["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]);
    expect(rsa).to.include("ssh-ed25519");
  });
});

function lenPrefixed(s: string): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(s.length);
  return Buffer.concat([b, Buffer.from(s)]);
}

describe("ssh: remote paths", () => {
  it("canonicalizes absolute paths and refuses the rest", () => {
    expect(remotePath("/var//lib/nio/", "p")).to.equal("/var/lib/nio");
    expect(remotePath("/etc/it's $(x)", "p")).to.equal("/etc/it's $(x)");
    for (const bad of ["", "relative", "/", "//", "/a/../b", "/a/./b", "/a\nb", "/a\0b", `/${"x".repeat(5000)}`]) {
      expect(() => remotePath(bad, "p"), JSON.stringify(bad)).to.throw(SshInvalidArgumentError);
    }
    expect(parentPath("/a/b")).to.equal("/a");
    expect(parentPath("/a")).to.equal("/");
  });
});

describe("ssh: output collection", () => {
  it("caps each stream, keeps an interleaved tail on a character boundary, and streams whole characters", () => {
    const chunks: string[] = [];
    const out = new OutputCollector({ maxBytes: 5, tailBytes: 4, onOutput: (c, s) => chunks.push(`${s}:${c}`) });
    const euro = Buffer.from("€"); // 3 bytes
    out.push("stdout", Buffer.from("ab"));
    out.push("stdout", euro.subarray(0, 1));
    out.push("stdout", euro.subarray(1));
    out.push("stderr", Buffer.from("xyz"));
    out.push("stdout", Buffer.from("cd"));
    out.finish();
    expect(out.text("stdout")).to.equal("ab€");
    expect(out.truncated).to.equal(true);
    expect(out.text("stderr")).to.equal("xyz");
    expect(out.tail()).to.equal("yzcd");
    expect(chunks).to.deep.equal(["stdout:ab", "stdout:€", "stderr:xyz", "stdout:cd"]);
  });

  it("does not start the tail inside a multi-byte character", () => {
    const out = new OutputCollector({ maxBytes: 100, tailBytes: 4 });
    out.push("stdout", Buffer.from("a€€"));
    expect(out.tail()).to.equal("€");
  });
});

describe("ssh: sudo refusal detection", () => {
  it("recognizes sudo's own messages only with its exit codes", () => {
    expect(sudoRefusal(1, "sudo: a password is required\n")).to.equal("sudo: a password is required");
    expect(sudoRefusal(1, "sudo: deploy is not in the sudoers file.\n")).to.match(/sudoers/);
    expect(sudoRefusal(127, "bash: line 1: sudo: command not found\n")).to.equal("sudo is not installed");
    expect(sudoRefusal(2, "sudo: a password is required\n")).to.equal(undefined);
    expect(sudoRefusal(1, "error: a password is required\n")).to.equal(undefined);
    expect(sudoRefusal(0, "")).to.equal(undefined);
  });
});

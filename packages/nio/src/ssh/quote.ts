/**
 * The only place a remote command string is made. The SSH protocol carries one string that the login shell parses;
 * every word of it comes from {@link shellQuote}, so each argv element arrives as exactly one literal argument.
 */
import { SshInvalidArgumentError } from "./errors.js";

/** sshd and the kernel cap one argument at 128 KiB; a command line near that is a bug, not a use. */
export const MAX_COMMAND_LENGTH = 128 * 1024;

/** The environment variable that tags every process a command starts, so a timeout can kill all of them. */
export const RUN_ID_VARIABLE = "NIO_RUN_ID";

/**
 * Quotes `arg` as one literal word for a POSIX shell (sh, dash, bash, zsh; also fish): the text is wrapped in single
 * quotes, where nothing is special, and each `'` or `\` is written outside the quotes as `\'` or `\\`. So inside the
 * quotes there is never a quote or backslash, which keeps shells that treat backslashes in single quotes (fish)
 * from parsing it differently. Throws {@link SshInvalidArgumentError} on a NUL byte, which no argument can carry.
 */
export function shellQuote(arg: string): string {
  if (typeof arg !== "string") throw new SshInvalidArgumentError("a command argument must be a string");
  if (arg.includes("\0")) throw new SshInvalidArgumentError("a command argument contains a NUL byte");
  return `'${arg.replace(/['\\]/g, (c) => `'\\${c}'`)}'`;
}

export interface RemoteCommandOptions {
  /** Prefix `sudo -n --`. */
  sudo?: boolean;
  /** Tag the command's processes with NIO_RUN_ID=<runId> (through `env`, after sudo so it survives env_reset). */
  runId?: string;
}

/**
 * Builds the command string for argv: `[sudo -n --] [env NIO_RUN_ID=<id>] argv...`, every word quoted. argv[0] must
 * be a non-empty program name without "=" (env would take it for an assignment).
 */
export function remoteCommand(argv: readonly string[], opts: RemoteCommandOptions = {}): string {
  if (argv.length === 0) throw new SshInvalidArgumentError("the command is empty");
  const program = argv[0];
  if (typeof program !== "string" || program === "" || program.includes("=")) {
    throw new SshInvalidArgumentError(`bad program name ${JSON.stringify(program)}: empty or contains "="`);
  }
  const words: string[] = [];
  if (opts.sudo) words.push("sudo", "-n", "--");
  if (opts.runId !== undefined) {
    if (!/^[0-9a-f]{8,64}$/.test(opts.runId)) throw new SshInvalidArgumentError("bad run id");
    words.push("env", `${RUN_ID_VARIABLE}=${opts.runId}`);
  }
  words.push(...argv);
  const command = words.map(shellQuote).join(" ");
  if (command.length > MAX_COMMAND_LENGTH) {
    throw new SshInvalidArgumentError(`the command line is too long (${command.length} > ${MAX_COMMAND_LENGTH})`);
  }
  return command;
}

/** What a log may show of a command: the program name only (arguments may be long or sensitive). */
export function commandLabel(argv: readonly string[]): string {
  const program = argv[0] ?? "";
  const base = program.slice(program.lastIndexOf("/") + 1);
  return JSON.stringify(base.length > 64 ? `${base.slice(0, 64)}…` : base);
}

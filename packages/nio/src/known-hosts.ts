import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { normalizeHostKey } from "./ssh/index.js";

/**
 * The known_hosts file at NIO_KNOWN_HOSTS_PATH, kept in step with the host keys NIO verified (one line per Machine,
 * `[address]:port key`), so a person can `ssh -o UserKnownHostsFile=<path>` with exactly the trust NIO has.
 * Written atomically (temp file + rename), mode 0600; writes are coalesced.
 */
export class KnownHostsFile {
  private readonly lines = new Map<string, string>();
  private writing: Promise<void> = Promise.resolve();
  private dirty = false;

  constructor(private readonly path: string) {}

  set(machineKey: string, host: string, port: number, key: string): void {
    const hostField = port === 22 ? host : `[${host}]:${port}`;
    const line = `${hostField} ${normalizeHostKey(key)}`;
    if (this.lines.get(machineKey) === line) return;
    this.lines.set(machineKey, line);
    this.schedule();
  }

  delete(machineKey: string): void {
    if (this.lines.delete(machineKey)) this.schedule();
  }

  /** Resolves once every change so far is on disk. */
  flush(): Promise<void> {
    return this.writing;
  }

  private schedule(): void {
    if (this.dirty) return;
    this.dirty = true;
    this.writing = this.writing.then(async () => {
      this.dirty = false;
      const text = [...this.lines.entries()]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([, l]) => l)
        .join("\n");
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      const tmp = `${this.path}.tmp-${process.pid}`;
      await writeFile(tmp, text ? `${text}\n` : "", { mode: 0o600 });
      await rename(tmp, this.path);
    });
    this.writing.catch(() => undefined);
  }
}

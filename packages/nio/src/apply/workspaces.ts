import { createHash } from "node:crypto";
import { PassThrough, type Readable } from "node:stream";
import type { Workspace } from "../workspace/index.js";

/** Tar archives up to this size are made once per shared workspace and replayed from memory. */
const MAX_CACHED_TAR_BYTES = 32 * 1024 * 1024;

/** One user's hold on a shared workspace. */
export interface WorkspaceHold {
  readonly ws: Workspace;
  /** The workspace's tar: made once for all holders (unless large, then one `tar` per call). */
  tar(): Readable;
  /** Ends this hold; the last one removes the workspace. Idempotent. */
  release(): Promise<void>;
}

interface Entry {
  ws: Promise<Workspace>;
  users: number;
  tar?: Promise<Buffer | undefined>;
}

/**
 * Workspaces shared by the applies that run at the same time with the same source (same tree, subdir and
 * additionalFiles): e.g. every node of a fleet moving to one commit needs one copy, one content hash and one tar, not
 * one each. A workspace lives as long as someone holds it; nothing is kept after the last release.
 */
export class WorkspacePool {
  private readonly entries = new Map<string, Entry>();

  /** Number of workspaces held now (for tests). */
  get size(): number {
    return this.entries.size;
  }

  async acquire(key: string, make: () => Promise<Workspace>): Promise<WorkspaceHold> {
    let entry = this.entries.get(key);
    if (entry === undefined) {
      const created: Entry = { ws: make(), users: 0 };
      this.entries.set(key, created);
      created.ws.catch(() => {
        if (this.entries.get(key) === created) this.entries.delete(key);
      });
      entry = created;
    }
    const e = entry;
    e.users++;
    let ws: Workspace;
    try {
      ws = await e.ws;
    } catch (err) {
      e.users--;
      throw err;
    }
    let released = false;
    return {
      ws,
      tar: () => this.tar(e, ws),
      release: async () => {
        if (released) return;
        released = true;
        e.users--;
        if (e.users > 0) return;
        if (this.entries.get(key) === e) this.entries.delete(key);
        await ws.cleanup();
      },
    };
  }

  private tar(e: Entry, ws: Workspace): Readable {
    e.tar ??= collect(ws.tarStream(), MAX_CACHED_TAR_BYTES);
    const out = new PassThrough();
    e.tar.then(
      (bytes) => {
        if (bytes !== undefined) {
          out.end(bytes);
          return;
        }
        const stream = ws.tarStream();
        stream.once("error", (err: Error) => out.destroy(err));
        out.once("close", () => stream.destroy());
        stream.pipe(out);
      },
      (err: unknown) => out.destroy(err instanceof Error ? err : new Error(String(err))),
    );
    return out;
  }
}

/** The stream's bytes, or undefined once they exceed `max` (the stream is then destroyed). */
function collect(stream: Readable, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        stream.removeAllListeners("data");
        stream.destroy();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    stream.once("error", reject);
    stream.once("end", () => resolve(Buffer.concat(chunks, size)));
  });
}

/** The sharing key of a workspace: where it is made, the tree, the subdir and every additional file's content. */
export function workspaceKey(parts: {
  baseDir: string;
  treeDir: string;
  commit: string;
  subdir?: string;
  additionalFiles: readonly { path: string; content: Buffer | Uint8Array }[];
}): string {
  const h = createHash("sha256");
  h.update(JSON.stringify([parts.baseDir, parts.treeDir, parts.commit, parts.subdir ?? ""]));
  for (const f of parts.additionalFiles) {
    h.update(`\0${f.path}\0`);
    h.update(createHash("sha256").update(f.content).digest("hex"));
  }
  return h.digest("hex");
}

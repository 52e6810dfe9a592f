/** Collects a command's output: capped stdout/stderr, a tail of both interleaved, and live UTF-8 chunks. */
import { StringDecoder } from "node:string_decoder";

import type { OutputStream } from "./types.js";

export interface CollectorOptions {
  maxBytes: number;
  tailBytes: number;
  onOutput?: (chunk: string, stream: OutputStream) => void;
}

class Capped {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly max: number) {}

  push(data: Buffer): void {
    const room = this.max - this.size;
    if (data.length > room) this.truncated = true;
    if (room <= 0) return;
    const kept = data.length > room ? data.subarray(0, room) : data;
    this.chunks.push(kept);
    this.size += kept.length;
  }

  buffer(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }
}

export class OutputCollector {
  private readonly streams: Record<OutputStream, Capped>;
  private readonly decoders: Record<OutputStream, StringDecoder> = {
    stdout: new StringDecoder("utf8"),
    stderr: new StringDecoder("utf8"),
  };
  private tailChunks: Buffer[] = [];
  private tailSize = 0;

  constructor(private readonly opts: CollectorOptions) {
    this.streams = { stdout: new Capped(opts.maxBytes), stderr: new Capped(opts.maxBytes) };
  }

  push(stream: OutputStream, data: Buffer): void {
    this.streams[stream].push(data);
    this.pushTail(data);
    if (this.opts.onOutput) this.emit(this.decoders[stream].write(data), stream);
  }

  /** Flushes a character left incomplete at the end of either stream to onOutput. */
  finish(): void {
    if (!this.opts.onOutput) return;
    for (const stream of ["stdout", "stderr"] as const) this.emit(this.decoders[stream].end(), stream);
  }

  get truncated(): boolean {
    return this.streams.stdout.truncated || this.streams.stderr.truncated;
  }

  buffer(stream: OutputStream): Buffer {
    return this.streams[stream].buffer();
  }

  text(stream: OutputStream): string {
    return this.buffer(stream).toString("utf8");
  }

  /** The last `tailBytes` bytes, decoded, starting at a character boundary. */
  tail(): string {
    const all = Buffer.concat(this.tailChunks, this.tailSize);
    let start = Math.max(0, all.length - this.opts.tailBytes);
    // Skip UTF-8 continuation bytes (10xxxxxx) so the tail does not start in the middle of a character.
    while (start < all.length && ((all[start] ?? 0) & 0xc0) === 0x80) start++;
    return all.subarray(start).toString("utf8");
  }

  private pushTail(data: Buffer): void {
    const limit = this.opts.tailBytes;
    if (limit <= 0) return;
    const piece = data.length > limit ? data.subarray(data.length - limit) : data;
    this.tailChunks.push(piece);
    this.tailSize += piece.length;
    while (this.tailChunks.length > 1 && this.tailSize - (this.tailChunks[0]?.length ?? 0) >= limit) {
      this.tailSize -= this.tailChunks.shift()?.length ?? 0;
    }
  }

  private emit(chunk: string, stream: OutputStream): void {
    if (chunk === "" || !this.opts.onOutput) return;
    try {
      this.opts.onOutput(chunk, stream);
    } catch {
      // A failing listener must not break the command or lose its result.
    }
  }
}

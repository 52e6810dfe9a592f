/** Bounds parallel work: at most `limit` holders at once, FIFO. */
export class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}

  get inUse(): number {
    return this.active;
  }

  async acquire(): Promise<() => void> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    else this.active++;
    return this.releaser();
  }

  /** A slot if one is free right now (nobody waiting), else undefined. */
  tryAcquire(): (() => void) | undefined {
    if (this.active >= this.limit) return undefined;
    this.active++;
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    };
  }
}

/**
 * NIO_MAX_CONCURRENT_APPLIES as two bounded stages. At most `limit` applies run on machines at once (`run`); at most
 * `limit` more are prepared meanwhile (`prepare`: connected, host files written, source uploaded), so an apply starts
 * the moment a run slot frees instead of paying for its connection and upload inside the slot.
 */
export class ApplySlots {
  readonly prepare: Semaphore;
  readonly run: Semaphore;
  constructor(limit: number) {
    this.prepare = new Semaphore(limit);
    this.run = new Semaphore(limit);
  }
}

/** One holder per key at a time (one apply per machine), FIFO per key. */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async acquire(key: string): Promise<() => void> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release: () => void = () => undefined;
    const mine = new Promise<void>((r) => (release = r));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    return () => {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }
}

// One open upload per final name, server-wide (§9.4). A newcomer with the same upload identity
// (a client that reconnected before the server noticed its old connection died) asks the holder
// to let go and waits a little; anyone else gets BUSY at once (STYLE.md, tus MemoryLocker).

import { setTimeout as delay } from 'node:timers/promises';
import { UploadError } from '../../proto/errors.js';

export class UploadLock {
  readonly name: string;
  readonly id: string;
  /** Made when first asked for: most locks (one per PUT) are released with nobody waiting. */
  #released: Promise<void> | undefined;
  #resolveReleased: (() => void) | undefined;
  #isReleased = false;
  #onReleaseRequest: (() => void) | undefined;
  readonly #table: UploadLocks;

  constructor(table: UploadLocks, name: string, id: string) {
    this.#table = table;
    this.name = name;
    this.id = id;
  }

  /** Resolves once the lock is released. */
  get released(): Promise<void> {
    if (this.#released === undefined) {
      this.#released = this.#isReleased ? Promise.resolve() : new Promise((resolve) => (this.#resolveReleased = resolve));
    }
    return this.#released;
  }

  /** The holder's handler for a same-identity newcomer; without one, newcomers get BUSY. */
  set onReleaseRequest(cb: (() => void) | undefined) {
    this.#onReleaseRequest = cb;
  }

  requestRelease(): boolean {
    const cb = this.#onReleaseRequest;
    if (cb === undefined) return false;
    this.#onReleaseRequest = undefined;
    cb();
    return true;
  }

  release(): void {
    this.#table.drop(this);
    this.#isReleased = true;
    this.#resolveReleased?.();
  }
}

export class UploadLocks {
  readonly #byName = new Map<string, UploadLock>();
  // Same identity ⇒ same name ⇒ same final path, so an id is held at most once.
  readonly #ids = new Set<string>();
  readonly #handoverTimeoutMs: number;

  constructor(handoverTimeoutMs: number) {
    this.#handoverTimeoutMs = handoverTimeoutMs;
  }

  isIdLocked(id: string): boolean {
    return this.#ids.has(id);
  }
  get size(): number {
    return this.#byName.size;
  }

  /** Takes the lock on the final name `name` for upload `id`, or throws UploadError BUSY. */
  /** The lock of `name` at once if nobody holds it, else null (acquire() then waits or refuses). */
  tryAcquire(name: string, id: string): UploadLock | null {
    return this.#byName.has(name) ? null : this.#take(name, id);
  }

  async acquire(name: string, id: string, shown: string): Promise<UploadLock> {
    const holder = this.#byName.get(name);
    if (holder !== undefined) {
      if (holder.id !== id || !holder.requestRelease()) {
        throw new UploadError('BUSY', `"${shown}" is being uploaded by another connection`);
      }
      const abort = new AbortController();
      const timeout = delay(this.#handoverTimeoutMs, undefined, { signal: abort.signal }).catch(() => undefined);
      await Promise.race([holder.released, timeout]);
      abort.abort();
      if (this.#byName.has(name)) {
        throw new UploadError('BUSY', `"${shown}" is still being uploaded by another connection`);
      }
    }
    return this.#take(name, id);
  }

  #take(name: string, id: string): UploadLock {
    const lock = new UploadLock(this, name, id);
    this.#byName.set(name, lock);
    this.#ids.add(id);
    return lock;
  }

  drop(lock: UploadLock): void {
    if (this.#byName.get(lock.name) !== lock) return;
    this.#byName.delete(lock.name);
    this.#ids.delete(lock.id);
  }
}

// Directory fsyncs shared by the files published around the same time (§9.11): a rename is
// durable once its directory is fsync'd after it, and one fsync covers every rename done before it
// started. So a request joins the next fsync of that directory not yet started: while one runs,
// all requests that come meanwhile share a single following one. Many files published into one
// directory at once cost a few directory fsyncs, not one each.
import path from 'node:path';
import { fsyncDir } from './fs-util.js';

interface DirState {
  /** The fsync running now, if any. */
  running: Promise<void> | null;
  /** The fsync that starts when `running` ends; every request made meanwhile waits for it. */
  next: Promise<void> | null;
}

export class DirSyncer {
  readonly #dirs = new Map<string, DirState>();
  /** Directories made lately whose own entry (in their parent) is not yet durable. */
  readonly #fresh = new Map<string, Promise<void>>();

  /**
   * `dirs` were just made (outermost first): their entries are made durable, and any file
   * published below them meanwhile, by whichever job, waits for that too (ancestorsDurable).
   */
  made(dirs: readonly string[]): Promise<void> {
    const all = dirs.map((dir) => {
      const p = this.sync(path.dirname(dir));
      this.#fresh.set(dir, p);
      const forget = (): void => {
        if (this.#fresh.get(dir) === p) this.#fresh.delete(dir);
      };
      p.then(forget, forget);
      return p;
    });
    return Promise.all(all).then(() => undefined);
  }

  /** Resolves once every directory between `dir` and `top` that was made lately has a durable entry. */
  ancestorsDurable(dir: string, top: string): Promise<void> {
    if (this.#fresh.size === 0) return Promise.resolve();
    const waits: Promise<void>[] = [];
    for (let d = dir; d.length > top.length && d !== path.dirname(d); d = path.dirname(d)) {
      const p = this.#fresh.get(d);
      if (p !== undefined) waits.push(p);
    }
    return Promise.all(waits).then(() => undefined);
  }

  /** Resolves once `dir` was fsync'd entirely after this call (rejects with its error). */
  sync(dir: string): Promise<void> {
    let state = this.#dirs.get(dir);
    if (state === undefined) this.#dirs.set(dir, (state = { running: null, next: null }));
    if (state.running === null) return this.#start(dir, state);
    const s = state;
    s.next ??= state.running.then(
      () => this.#start(dir, s),
      () => this.#start(dir, s),
    );
    return s.next;
  }

  #start(dir: string, state: DirState): Promise<void> {
    state.next = null;
    const run = fsyncDir(dir).finally(() => {
      if (state.running === run) state.running = null;
      if (state.running === null && state.next === null) this.#dirs.delete(dir);
    });
    state.running = run;
    return run;
  }
}

// What every backend's partial shares: its writes go through one in-order WriteQueue, and its
// durable offset is the one its record holds. A backend adds where the bytes and record live.
import type { StxError } from '../proto/errors.js';
import type { PartialRecord } from './backend.js';
import type { WriteQueue } from './write-queue.js';

export abstract class QueuedPartial {
  protected readonly queue: WriteQueue;
  protected record: PartialRecord;

  constructor(queue: WriteQueue, record: PartialRecord) {
    this.queue = queue;
    this.record = record;
  }

  get durable(): number {
    return this.record.durable;
  }
  get paused(): boolean {
    return this.queue.paused;
  }
  get failure(): StxError | undefined {
    return this.queue.failure;
  }

  write(offset: number, data: Buffer, onWritten?: () => void): boolean {
    return this.queue.enqueue(offset, data, onWritten);
  }

  drained(): Promise<void> {
    return this.queue.drained();
  }
}

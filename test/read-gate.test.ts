// The read gate (recv/read-gate.ts) with the memory budget: a connection that waits in line for a
// record's buffer reads again once it has one, however it came to ask again.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { admittedBuffers, ReadGate } from '../src/recv/read-gate.js';
import { BodyPool } from '../src/transfer/body-pool.js';
import { MemoryBudget, type MemoryUser } from '../src/transfer/budget.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A socket that records whether it is read. */
class Socket {
  reading = true;
  pause(): void {
    this.reading = false;
  }
  resume(): void {
    this.reading = true;
  }
}

/** A connection's side of the budget, as recv/connection.ts builds it: its gate and its buffers. */
function connection(budget: MemoryBudget): { socket: Socket; gate: ReadGate; user: MemoryUser & { held: number; calls: number } } {
  const socket = new Socket();
  const gate = new ReadGate(socket);
  const user = {
    held: 0,
    calls: 0,
    measure: () => user.held,
    pausable: () => true,
    pause: () => gate.hold('memory'),
    resume: () => {
      user.calls++;
      gate.release('memory');
      gate.release('record-buffer');
    },
  };
  budget.add(user);
  return { socket, gate, user };
}

describe('admittedBuffers', () => {
  it('a connection in line for a buffer that gets one, called back or not, reads again', () => {
    const budget = new MemoryBudget(4 * MiB, 128 * KiB);
    const pool = new BodyPool();
    const holder = connection(budget);
    const first = connection(budget);
    const waiter = connection(budget);
    const buffers = admittedBuffers(waiter.gate, pool, budget, waiter.user);
    holder.user.held = 3 * MiB + 512 * KiB;
    budget.update(holder.user);
    assert.equal(budget.admit(first.user, MiB), false);
    assert.equal(buffers.take(MiB), null, 'no room: it waits, behind the first');
    assert.equal(waiter.socket.reading, false);
    // Room for two: the first is called back and takes its buffer.
    holder.user.held = 2 * MiB;
    budget.update(holder.user);
    assert.equal(first.user.calls, 1);
    assert.equal(budget.admit(first.user, MiB), true);
    // The waiter asks again (called back, or from another turn of its loop: an answer written,
    // a step ended) and gets its buffer; then it must read again. It once did not: its wait's
    // hold stayed on the gate (a 'memory' reason shared with the budget's stop) when it was
    // admitted without being called back, and it sat on its buffer until the idle timeout
    // (one upload in about five runs of 100 at once).
    const got = buffers.take(MiB);
    assert.notEqual(got, null);
    assert.equal(waiter.gate.holds('record-buffer'), false);
    assert.equal(waiter.socket.reading, true);
    if (got !== null) buffers.give(got);
  });

  it('asked again while it still does not fit, it keeps waiting', () => {
    const budget = new MemoryBudget(4 * MiB, 128 * KiB);
    const pool = new BodyPool();
    const holder = connection(budget);
    const waiter = connection(budget);
    const buffers = admittedBuffers(waiter.gate, pool, budget, waiter.user);
    holder.user.held = 3 * MiB + 512 * KiB;
    budget.update(holder.user);
    assert.equal(buffers.take(MiB), null);
    assert.equal(buffers.take(MiB), null);
    assert.equal(waiter.socket.reading, false);
    assert.equal(waiter.user.calls, 0);
  });
});

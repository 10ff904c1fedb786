// MemoryBudget (transfer/budget.ts, --max-memory): whom it stops and when it lets them go on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryBudget, type MemoryUser } from '../src/transfer/budget.js';
import { defaultMaxMemoryBytes, recordBuffersMaxBytes } from '../src/recv/config.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A user whose holding the test sets, and who records whether it may read. */
class User implements MemoryUser {
  held = 0;
  reading = true;
  resumes = 0;
  midRecord = false;
  constructor(readonly name: string) {}
  pausable(): boolean {
    return !this.midRecord;
  }
  measure(): number {
    return this.held;
  }
  pause(): void {
    this.reading = false;
  }
  resume(): void {
    this.reading = true;
    this.resumes++;
  }
}

function users(budget: MemoryBudget, n: number): User[] {
  return Array.from({ length: n }, (_, i) => {
    const u = new User(`u${i}`);
    budget.add(u);
    return u;
  });
}

describe('MemoryBudget', () => {
  it('past the maximum, stops the users holding the most until the rest fit under the low-water mark, never a small one', () => {
    const budget = new MemoryBudget(10 * MiB, 128 * KiB);
    const [big, mid, small, tiny] = users(budget, 4) as [User, User, User, User];
    for (const [u, held] of [[big, 5 * MiB], [mid, 4 * MiB], [small, 1 * MiB], [tiny, 64 * KiB]] as const) {
      u.held = held;
      budget.update(u);
    }
    assert.equal(budget.usedBytes, 10 * MiB + 64 * KiB);
    // Over 10 MiB: the biggest (5 MiB) goes, leaving 5.06 MiB ≤ 7.5 MiB.
    assert.deepEqual([big.reading, mid.reading, small.reading, tiny.reading], [false, true, true, true]);
    assert.equal(budget.stopped, 1);
    // It frees half of what it holds: it is no longer among the most, so it reads again.
    big.held = 2 * MiB;
    budget.update(big);
    assert.equal(big.reading, true);
    assert.equal(budget.stopped, 0);
  });

  it('a user in the middle of a record is not stopped (it would keep the record’s buffer); the next largest is', () => {
    const budget = new MemoryBudget(4 * MiB, 128 * KiB);
    const [opening, other] = users(budget, 2) as [User, User];
    opening.midRecord = true;
    opening.held = 3 * MiB;
    budget.update(opening);
    other.held = 2 * MiB;
    budget.update(other);
    assert.deepEqual([opening.reading, other.reading], [true, false]);
  });

  it('users at or under the floor are never stopped, even when every other one is', () => {
    const budget = new MemoryBudget(8 * MiB, 128 * KiB);
    const all = users(budget, 10);
    for (const u of all) {
      u.held = MiB;
      budget.update(u);
    }
    const newcomer = new User('newcomer');
    budget.add(newcomer);
    newcomer.held = 100 * KiB;
    budget.update(newcomer);
    assert.ok(all.some((u) => !u.reading), 'some heavy users stopped');
    assert.ok(all.some((u) => u.reading), 'not every heavy user stopped');
    assert.equal(newcomer.reading, true);
  });

  it('admits a record buffer only while it fits; the waiting are called back first come, first served, as memory frees', () => {
    const budget = new MemoryBudget(4 * MiB, 128 * KiB);
    const [holder, a, b] = users(budget, 3) as [User, User, User];
    holder.held = 3 * MiB + 512 * KiB;
    budget.update(holder);
    assert.equal(budget.admit(a, MiB), false, 'a 1 MiB buffer does not fit');
    assert.equal(budget.admit(b, MiB), false);
    assert.equal(budget.stopped, 2);
    // Room for one: a (first in line) is called back, b is not.
    holder.held = 2 * MiB + 512 * KiB;
    budget.update(holder);
    assert.deepEqual([a.resumes, b.resumes], [1, 0]);
    assert.equal(budget.admit(b, MiB), false, 'b may not jump the line while a is called');
    assert.equal(budget.admit(a, MiB), true);
    a.held = MiB;
    budget.update(a);
    // a's buffer took the room; b is called once there is room again.
    assert.equal(b.resumes, 0);
    a.held = 0;
    budget.update(a);
    assert.equal(b.resumes, 1);
    assert.equal(budget.admit(b, MiB), true);
    assert.equal(budget.stopped, 0);
  });

  it('a user called back but beaten to the memory goes back in line, and the line does not stall', () => {
    const budget = new MemoryBudget(4 * MiB, 128 * KiB);
    const [holder, a, b, other] = users(budget, 4) as [User, User, User, User];
    holder.held = 3 * MiB + 512 * KiB;
    budget.update(holder);
    assert.equal(budget.admit(a, MiB), false);
    assert.equal(budget.admit(b, MiB), false);
    holder.held = 2 * MiB + 512 * KiB;
    budget.update(holder);
    assert.equal(a.resumes, 1);
    // Before a asks again, another user's memory grows and takes the room.
    other.held = MiB;
    budget.update(other);
    assert.equal(budget.admit(a, MiB), false);
    // Memory frees again: b, now first in line, is called back (a queued behind it).
    holder.held = 0;
    budget.update(holder);
    assert.deepEqual([a.resumes, b.resumes], [1, 1]);
    assert.equal(budget.admit(b, MiB), true);
  });

  it('a user stopped while it waits for a buffer is called back once it is read again and its record fits', () => {
    // A stopped connection still handles the frames it had read, so it can ask for a record's
    // buffer while stopped; the budget then let it read again without ever calling it back, and
    // with nothing else freeing memory it waited for the idle timeout (seen with 100 uploads).
    const budget = new MemoryBudget(4 * MiB, 128 * KiB);
    const [waiter, holder] = users(budget, 2) as [User, User];
    waiter.held = 2 * MiB + 512 * KiB;
    budget.update(waiter);
    holder.held = 2 * MiB;
    budget.update(holder);
    assert.equal(waiter.reading, false, 'the largest is stopped');
    assert.equal(budget.admit(waiter, MiB), false, '1 MiB more does not fit');
    // The holder lets go of everything: the waiter is no longer among the most, and its record fits.
    holder.held = 0;
    budget.update(holder);
    assert.equal(waiter.resumes, 1, 'called back');
    assert.equal(budget.admit(waiter, MiB), true);
    assert.equal(budget.stopped, 0);
  });

  it('a user sent to the back of the line while its record would fit calls the first in line: a line that fits never waits', () => {
    // A record is opened piece by piece, each piece admitted: a called user takes one, and
    // asking for the next finds another first in line. Both then waited for memory to free, but
    // each held what it had: with nothing else running nothing ever freed (the 100-upload stall).
    const budget = new MemoryBudget(16 * MiB, 128 * KiB);
    const [holder, a, b] = users(budget, 3) as [User, User, User];
    holder.held = 15 * MiB + 512 * KiB;
    budget.update(holder);
    assert.equal(budget.admit(a, MiB), false);
    holder.held = 4 * MiB;
    budget.update(holder);
    assert.equal(a.resumes, 1, 'a called');
    assert.equal(budget.admit(b, MiB), false, 'b waits behind the called a');
    assert.equal(budget.admit(a, MiB), true);
    a.held = MiB;
    budget.update(a);
    // a's next piece: b is first in line now, so a waits; b's record fits, so b is called.
    assert.equal(budget.admit(a, MiB), false);
    assert.equal(b.resumes, 1, 'b called');
    assert.equal(budget.admit(b, MiB), true);
    b.held = MiB;
    budget.update(b);
    assert.equal(a.resumes, 2, 'and a after it');
    assert.equal(budget.admit(a, MiB), true);
    assert.equal(budget.stopped, 0);
  });

  it('with a record share, admits record buffers only while those out stay within it, and calls the next back as one comes back', () => {
    // 100 slow uploads each held a record still arriving: the pool grew to the whole budget,
    // each MiB of it first touched costing page faults (issue 15).
    let out = 0;
    const budget = new MemoryBudget(16 * MiB, 128 * KiB, undefined, { held: () => out, maxBytes: 2 * MiB });
    const [a, b, c] = users(budget, 3) as [User, User, User];
    for (const u of [a, b]) {
      assert.equal(budget.admit(u, MiB), true);
      out += MiB;
      u.held = MiB;
      budget.update(u);
    }
    assert.equal(budget.admit(c, MiB), false, 'the share is full, though the budget has room');
    assert.equal(budget.stopped, 1);
    // a's record is written and hashed: its buffer goes back to the pool.
    out -= MiB;
    a.held = 0;
    budget.update(a);
    assert.equal(c.resumes, 1, 'c called back');
    assert.equal(budget.admit(c, MiB), true);
    assert.equal(budget.stopped, 0);
  });

  it('with a record share, always admits one record while none is out, if the budget has room', () => {
    let out = 0;
    const budget = new MemoryBudget(4 * MiB, 128 * KiB, undefined, { held: () => out, maxBytes: 512 * KiB });
    const [a, b, other] = users(budget, 3) as [User, User, User];
    other.held = 2 * MiB; // small records, unread output: not record buffers
    budget.update(other);
    assert.equal(budget.admit(a, MiB), true);
    out += MiB;
    assert.equal(budget.admit(b, MiB), false);
    out = 0;
    other.held = 3 * MiB + 512 * KiB;
    budget.update(other);
    assert.equal(budget.admit(b, MiB), false, 'nor beyond the budget itself');
  });

  it('forgets a user that leaves, and calls the next in line', () => {
    const budget = new MemoryBudget(4 * MiB, 128 * KiB);
    const [holder, a] = users(budget, 2) as [User, User];
    holder.held = 4 * MiB;
    budget.update(holder);
    assert.equal(budget.admit(a, MiB), false);
    budget.remove(holder);
    assert.equal(budget.usedBytes, 0);
    assert.equal(a.resumes, 1);
    assert.equal(budget.admit(a, MiB), true);
  });
});

describe('the record share (recordBuffersMaxBytes)', () => {
  it('is half the budget, at least 16 MiB (one upload at full speed holds ~12), at most the budget', () => {
    assert.equal(recordBuffersMaxBytes(64 * MiB), 32 * MiB);
    assert.equal(recordBuffersMaxBytes(128 * MiB), 64 * MiB);
    assert.equal(recordBuffersMaxBytes(24 * MiB), 16 * MiB);
    assert.equal(recordBuffersMaxBytes(8 * MiB), 8 * MiB);
  });
});

describe('the default budget (defaultMaxMemoryBytes)', () => {
  it('is a quarter of RAM within 32–64 MiB: 100 slow uploads fill it with first-touched pool memory (issue 15)', () => {
    const GiB = 1024 * MiB;
    assert.equal(defaultMaxMemoryBytes(64 * GiB), 64 * MiB);
    assert.equal(defaultMaxMemoryBytes(256 * MiB + 5), 64 * MiB);
    assert.equal(defaultMaxMemoryBytes(200 * MiB), 50 * MiB);
    assert.equal(defaultMaxMemoryBytes(64 * MiB), 32 * MiB);
  });
});

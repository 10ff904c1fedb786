// Targets: each side's state machine (§11) driven by a sequence of sent frame types and
// received frame bodies (decodeBody, then Machine.receive), in lockstep with the reference
// machine read from the spec. Sequences are walks that mostly follow the spec's moves, with
// wild steps, dropped/repeated/swapped steps and byte-mutated bodies mixed in.
import fc from 'fast-check';
import {
  clientMachine,
  decodeBody,
  encodeBody,
  FRAME_TYPES,
  serverMachine,
  type Frame,
  type FrameName,
} from '../../../src/proto/index.js';
import { frameArb } from '../frames.js';
import { applyMutations, mutationsArb, type Mutation } from '../mutate.js';
import { compareOutcome, fail, typedCode } from '../oracle.js';
import { referenceBody, REF_FRAME_NAMES } from '../reference-body.js';
import { RefMachine, refMoves, type Side } from '../reference-machine.js';
import { stateSequences, validFrames } from '../seeds.js';
import { checkFrame, once, type Regression, type Target } from '../target.js';

export type Step = { readonly dir: 'send'; readonly frame: FrameName } | { readonly dir: 'recv'; readonly body: Buffer };

export interface MachineInput {
  readonly steps: readonly Step[];
}

const NAMES = Object.keys(FRAME_TYPES).filter((n): n is FrameName => n in FRAME_TYPES);
const isFrameName = (s: string): s is FrameName => NAMES.some((n) => n === s);

/** Valid bodies from spec/vectors by frame name: what a received step carries. */
const seedPool = once((): Map<string, Buffer[]> => {
  const pool = new Map<string, Buffer[]>();
  for (const { body } of validFrames()) {
    const name = REF_FRAME_NAMES.get(body[0] ?? -1) ?? '?';
    pool.set(name, [...(pool.get(name) ?? []), body]);
  }
  return pool;
});

function bodyFor(name: string, pick: number, extra: readonly Buffer[]): Buffer {
  const own = [...(seedPool().get(name) ?? []), ...extra.filter((b) => REF_FRAME_NAMES.get(b[0] ?? -1) === name)];
  return own[pick % Math.max(1, own.length)] ?? Buffer.from([FRAME_TYPES[isFrameName(name) ? name : 'PING']]);
}

interface Pick {
  readonly r: number;
  readonly k: number;
  readonly b: number;
}

/** A walk: mostly a move the spec allows in the current state, sometimes any frame either way. */
function walk(side: Side, picks: readonly Pick[], extra: readonly Buffer[]): Step[] {
  const ref = new RefMachine(side);
  const steps: Step[] = [];
  for (const p of picks) {
    const moves = refMoves(side, ref.state);
    const legal = [...moves.recv.map((f) => ['recv', f] as const), ...moves.send.map((f) => ['send', f] as const)].filter(
      ([, f]) => f !== 'ERROR' || p.r < 3,
    );
    const wild = ([p.k % 2 === 0 ? 'recv' : 'send', NAMES[(p.k >> 1) % NAMES.length] ?? 'PING'] as const);
    const [dir, name] = p.r < 85 && legal.length > 0 ? (legal[p.k % legal.length] ?? wild) : wild;
    if (!isFrameName(name)) continue;
    steps.push(dir === 'send' ? { dir, frame: name } : { dir, body: bodyFor(name, p.b, extra) });
    if ((dir === 'send' ? ref.send(name) : ref.receive(name)) !== null) break;
  }
  return steps;
}

type Edit =
  | { readonly kind: 'mutate'; readonly step: number; readonly mutations: readonly Mutation[] }
  | { readonly kind: 'drop' | 'repeat' | 'swap'; readonly step: number };

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant('mutate' as const), step: fc.nat(), mutations: mutationsArb(2) }),
  fc.record({ kind: fc.constantFrom('drop' as const, 'repeat' as const, 'swap' as const), step: fc.nat() }),
);

function edit(steps: readonly Step[], edits: readonly Edit[]): Step[] {
  const out = [...steps];
  for (const e of edits) {
    if (out.length === 0) break;
    const i = e.step % out.length;
    const s = out[i];
    if (s === undefined) continue;
    if (e.kind === 'drop') out.splice(i, 1);
    else if (e.kind === 'repeat') out.splice(i, 0, s);
    else if (e.kind === 'swap' && i + 1 < out.length) out.splice(i, 2, out[i + 1] ?? s, s);
    else if (e.kind === 'mutate' && s.dir === 'recv') {
      out[i] = { dir: 'recv', body: applyMutations(s.body, e.mutations, { others: [], units: () => [1] }) };
    }
  }
  return out;
}

function showStep(s: Step): string {
  return s.dir === 'send' ? `send ${s.frame}` : `recv ${s.body.toString('hex').slice(0, 48)}${s.body.length > 24 ? '…' : ''}`;
}

function machineTarget(side: Side): Target<MachineInput> {
  return {
    name: `${side}-machine`,
    about: `${side} machine (§11): sent frame types and received bodies (decodeBody → Machine.receive) vs the spec's machine`,
    seeds() {
      return stateSequences()
        .filter((s) => s.machine === side)
        .map((s) => ({
          steps: s.steps.flatMap((st): Step[] =>
            isFrameName(st.frame) ? [st.dir === 'send' ? { dir: 'send', frame: st.frame } : { dir: 'recv', body: bodyFor(st.frame, 0, []) }] : [],
          ),
        }));
    },
    arbitrary(seeds) {
      const walked = fc
        .record({
          picks: fc.array(fc.record({ r: fc.nat(99), k: fc.nat(), b: fc.nat() }), { maxLength: 40 }),
          extra: fc.array(frameArb.map(encodeBody), { maxLength: 3 }),
        })
        .map(({ picks, extra }) => walk(side, picks, extra));
      const base = seeds.length > 0 ? fc.oneof(walked, fc.constantFrom(...seeds.map((s) => s.steps))) : walked;
      return fc.record({ steps: base, edits: fc.array(editArb, { maxLength: 3 }) }).map(({ steps, edits }) => ({ steps: edit(steps, edits) }));
    },
    run({ steps }) {
      const m = side === 'server' ? serverMachine() : clientMachine();
      const ref = new RefMachine(side);
      for (const [i, step] of steps.entries()) {
        const before = ref.state;
        let name: FrameName;
        if (step.dir === 'send') {
          name = step.frame;
        } else {
          const frames: Frame[] = [];
          const code = typedCode(() => {
            const frame = decodeBody(step.body);
            checkFrame(frame);
            frames.push(frame);
          });
          compareOutcome({ frames, code }, [{ kind: 'body', verdict: referenceBody(step.body) }]);
          const frame = frames[0];
          if (frame === undefined) return;
          name = frame.type;
        }
        const code = typedCode(() => (step.dir === 'send' ? m.send(name) : m.receive(name)));
        const expected = step.dir === 'send' ? ref.send(name) : ref.receive(name);
        if (code !== expected) fail(`step #${i}: ${step.dir} ${name} in ${before}: ${code ?? `→ ${m.state}`}, spec ${expected ?? `→ ${ref.state}`}`);
        if (code !== null) return;
        if (m.state !== ref.state) fail(`step #${i}: ${step.dir} ${name} in ${before}: → ${m.state}, spec → ${ref.state}`);
      }
    },
    show({ steps }) {
      return `${side}: ${steps.map(showStep).join(', ')}`;
    },
    regression({ steps }): Regression | null {
      const ref = new RefMachine(side);
      const named: [string, string][] = [];
      for (const s of steps) {
        let name: string;
        if (s.dir === 'send') name = s.frame;
        else {
          const v = referenceBody(s.body);
          if (v.kind !== 'accept') return null;
          name = String(v.frame.get('type'));
        }
        named.push([s.dir, name]);
        const error = s.dir === 'send' ? ref.send(name) : ref.receive(name);
        if (error !== null) {
          return { file: 'states-fuzz.json', vector: { name: `fuzz: ${side}: ${s.dir} ${name} → ${error}`, machine: side, steps: named, error } };
        }
      }
      return { file: 'states-fuzz.json', vector: { name: `fuzz: ${side}: ${named.length} steps → ${ref.state}`, machine: side, steps: named, final: ref.state } };
    },
  };
}

export const serverMachineTarget = machineTarget('server');
export const clientMachineTarget = machineTarget('client');

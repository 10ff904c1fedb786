// Where a contender's two sides run. By default both on this host's 127.0.0.1; under
// `npm run bench -- --wan RTT,RATE` the server runs in one network namespace and the client in
// another, joined by an emulated long link (bench/lib/wan.ts).
import { LOOPBACK } from './net.js';

export type Side = 'server' | 'client';

export interface Placement {
  /** The address the server listens on and the client connects to. */
  readonly host: string;
  /** The command line that runs `command args` on `side`, e.g. under `ip netns exec NAME`. */
  command(side: Side, command: string, args: readonly string[]): readonly [string, readonly string[]];
}

/** Both sides on 127.0.0.1 of this host's own network namespace. */
export const LOCAL: Placement = {
  host: LOOPBACK,
  command: (_side, command, args) => [command, args],
};

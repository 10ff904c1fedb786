// The fuzz targets (issue "Hardening", part 1): the frame decoder in both phases, both state
// machines, the record layer's open path, and each side's whole receive path.
import { clientWire, serverWire } from './targets/handshake-wire.js';
import { clientMachineTarget, serverMachineTarget } from './targets/machines.js';
import { plaintextStream } from './targets/plaintext-stream.js';
import { recordBody } from './targets/record-body.js';
import { recordChannel } from './targets/record-channel.js';
import { erase, type AnyTarget } from './target.js';

export const TARGETS: readonly AnyTarget[] = [
  erase(plaintextStream),
  erase(recordBody),
  erase(serverMachineTarget),
  erase(clientMachineTarget),
  erase(recordChannel),
  erase(serverWire),
  erase(clientWire),
];

export function targetByName(name: string): AnyTarget | undefined {
  return TARGETS.find((t) => t.name === name);
}

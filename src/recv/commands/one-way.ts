// What a command that only sends once started (get, list) does with what comes in: in its states
// §11.1 lets only PING, PONG and ERROR in, which the connection handles, and no DATA; it has
// nothing to make durable at shutdown.
import { ResourceError } from '../../proto/errors.js';
import type { Command, Tagged } from './command.js';

/** receive, receiveData and settle of such a command; `what` names it in the INTERNAL error. */
export function oneWay<S extends Tagged>(what: string): Pick<Command<S>, 'receive' | 'receiveData' | 'settle'> {
  return {
    receive(): undefined {
      return undefined;
    },

    receiveData(state, _offset, _data, lease): void {
      lease.release();
      throw new ResourceError('INTERNAL', `DATA reached ${what} in state ${state.kind}`); // the tables admit none
    },

    settle(): Promise<void> {
      return Promise.resolve();
    },
  };
}

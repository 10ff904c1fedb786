// The daemon's log: one JSON line per event on stdout (fd 1) for machines and journals, or
// human-readable lines (pino-pretty) when stdout is a terminal or `--log-format pretty` asks.
// Both destinations write synchronously, so lines keep their order with the stderr notices and
// nothing is lost at exit; pino-pretty runs as a stream in this thread, not a worker transport,
// and is loaded only when asked for (it is ~40 modules a JSON-logging daemon never needs).
import { pino, type Level, type Logger } from 'pino';

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** `--log-format` if given, else pretty on a terminal and JSON otherwise. */
export function chooseLogFormat(requested: LogFormat | undefined, stdoutIsTty: boolean): LogFormat {
  return requested ?? (stdoutIsTty ? 'pretty' : 'json');
}

export async function createLog(level: Level | 'silent', format: LogFormat, stdoutIsTty: boolean): Promise<Logger> {
  const options = { level, base: { svc: 'stx-recv' } };
  switch (format) {
    case 'json':
      return pino(options, pino.destination({ fd: 1, sync: true }));
    case 'pretty': {
      const { default: PinoPretty } = await import('pino-pretty'); // module.exports, also once bundled
      return pino(
        options,
        PinoPretty({
          destination: 1,
          sync: true,
          colorize: stdoutIsTty,
          translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
          ignore: 'pid,hostname,svc',
          singleLine: true,
        }),
      );
    }
  }
}

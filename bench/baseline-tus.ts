// tus baseline: @tus/server with @tus/file-store behind HTTPS, and tus-js-client, each in its own
// process, on 127.0.0.1.
//
//   node dist/bench/baseline-tus.js server [--host ADDR] --port 0 --dir DIR --cert CERT --key KEY
//     prints "listening on 127.0.0.1:PORT"; uploads land in DIR/<id>; SIGTERM stops it.
//   node dist/bench/baseline-tus.js client --endpoint https://127.0.0.1:PORT/files/ --file FILE --ca CERT
//     [--chunk-size BYTES]; uploads FILE, prints {"url":…} and exits. The server logs each TLS cipher on stderr.
import { readFile, stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { Agent, createServer } from 'node:https';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';
import { DefaultHttpStack, Upload } from 'tus-js-client';

import { LOOPBACK } from './lib/net.js';
import { TUS_CHUNK_BYTES, TUS_PATH } from './lib/tus-constants.js';

/** How long a stopping server waits for open connections before exiting anyway. */
const SHUTDOWN_GRACE_MS = 2_000;

async function server(host: string, port: number, dir: string, certPath: string, keyPath: string): Promise<void> {
  const tus = new Server({
    path: TUS_PATH,
    datastore: new FileStore({ directory: dir }),
    // The client resolves "/files/<id>" against the endpoint; no Host/proto guessing.
    relativeLocation: true,
  });
  const https = createServer({ cert: await readFile(certPath), key: await readFile(keyPath) }, (req, res) => {
    tus.handle(req, res).catch((err: unknown) => {
      process.stderr.write(`tus handler: ${err instanceof Error ? err.message : String(err)}\n`);
      res.destroy();
    });
  });
  https.on('secureConnection', (socket) => {
    const { version, standardName } = socket.getCipher();
    process.stderr.write(`tls ${version} ${standardName}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    https.once('error', reject);
    https.listen(port, host, () => resolve());
  });
  const address = https.address();
  if (typeof address !== 'object' || address === null) throw new Error('server has no address');
  process.stdout.write(`listening on ${host}:${address.port}\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  process.stderr.write(`tus server: ${signal}, stopping\n`);
  https.closeAllConnections();
  await Promise.race([
    new Promise<void>((resolve) => https.close(() => resolve())),
    new Promise<void>((resolve) => setTimeout(resolve, SHUTDOWN_GRACE_MS).unref()),
  ]);
}

async function client(endpoint: string, filePath: string, caPath: string, chunkSize: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: await readFile(caPath) });
  const { size } = await stat(filePath);
  const url = await new Promise<string>((resolve, reject) => {
    // tus-js-client's Node build re-opens the file by path for each chunk (lib/node/fileReader.js,
    // FileSource): nothing is buffered.
    const upload: Upload = new Upload(createReadStream(filePath), {
      endpoint,
      chunkSize,
      uploadSize: size,
      metadata: { filename: basename(filePath) },
      httpStack: new DefaultHttpStack({ agent }),
      // A failure is a result here, not something to hide behind retries.
      retryDelays: null,
      storeFingerprintForResuming: false,
      onSuccess: () => resolve(upload.url ?? ''),
      onError: reject,
    });
    upload.start();
  });
  agent.destroy();
  process.stdout.write(`${JSON.stringify({ url })}\n`);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      host: { type: 'string', default: LOOPBACK },
      port: { type: 'string', default: '0' },
      dir: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      endpoint: { type: 'string' },
      file: { type: 'string' },
      ca: { type: 'string' },
      'chunk-size': { type: 'string', default: String(TUS_CHUNK_BYTES) },
    },
  });
  const [mode] = positionals;
  if (mode === 'server' && values.dir !== undefined && values.cert !== undefined && values.key !== undefined) {
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port must be 0..65535');
    return server(values.host, port, values.dir, values.cert, values.key);
  }
  if (mode === 'client' && values.endpoint !== undefined && values.file !== undefined && values.ca !== undefined) {
    const chunkSize = Number(values['chunk-size']);
    if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) throw new Error('--chunk-size must be a positive integer');
    return client(values.endpoint, values.file, values.ca, chunkSize);
  }
  throw new Error(
    'usage: baseline-tus server [--host ADDR] --port 0 --dir DIR --cert CERT --key KEY' +
      ' | client --endpoint URL --file FILE --ca CERT [--chunk-size BYTES]',
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`baseline-tus: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

// The baseline of the S3 bench (bench/s3.ts): one file sent straight to the object store with AWS's
// own multipart uploader, @aws-sdk/lib-storage's Upload, run as its own process under GNU time.
//
//   node dist/bench/s3-upload.js FILE ENDPOINT BUCKET KEY PART_BYTES QUEUE_SIZE
//     credentials and region from the AWS_* environment; prints {"ok":true} and exits 0 once
//     CompleteMultipartUpload has answered.
import { createReadStream } from 'node:fs';

import { Upload } from '@aws-sdk/lib-storage';

import { createS3Client } from '../src/storage/s3/client.js';

async function main(): Promise<void> {
  const [file, endpoint, bucket, key, partBytes, queueSize] = process.argv.slice(2);
  if (file === undefined || endpoint === undefined || bucket === undefined || key === undefined || partBytes === undefined || queueSize === undefined) {
    throw new Error('usage: s3-upload.js FILE ENDPOINT BUCKET KEY PART_BYTES QUEUE_SIZE');
  }
  const client = createS3Client({ endpoint });
  try {
    const upload = new Upload({
      client,
      params: { Bucket: bucket, Key: key, Body: createReadStream(file) },
      partSize: Number(partBytes),
      queueSize: Number(queueSize),
      leavePartsOnError: false,
    });
    await upload.done();
  } finally {
    client.destroy();
  }
  process.stdout.write('{"ok":true}\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`s3-upload: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

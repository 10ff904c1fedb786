// The S3 client the backend uses: path-style addressing (RGW and most S3-compatible stores serve
// http://HOST/BUCKET/KEY; virtual-host names need DNS), and checksums only where S3 requires
// them (the SDK's default adds CRC32 trailers to streamed uploads, which RGW 16 answers with 411).
// Credentials come from the usual AWS sources (environment, ~/.aws files), region likewise or us-east-1.

import { S3Client } from '@aws-sdk/client-s3';

export interface S3ClientOptions {
  /** http(s)://HOST[:PORT] of the S3 endpoint (--s3-endpoint). */
  readonly endpoint: string;
  readonly region?: string | undefined;
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string } | undefined;
}

export function createS3Client(options: S3ClientOptions): S3Client {
  // The SDK warns on every start under Node < 22 about its releases after January 2027;
  // package-lock.json pins the release this was tested with, which supports Node 20.
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
  return new S3Client({
    endpoint: options.endpoint,
    region: options.region ?? process.env['AWS_REGION'] ?? process.env['AWS_DEFAULT_REGION'] ?? 'us-east-1',
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    ...(options.credentials === undefined ? {} : { credentials: { ...options.credentials } }),
  });
}

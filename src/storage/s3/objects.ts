// The few S3 calls the backend makes, on one bucket under one key prefix, with S3's failures
// turned into typed stx errors (IO_ERROR naming the call and the S3 error code; a failed
// condition is PreconditionFailed, which the callers handle). Keys given here are relative to the
// prefix. Nothing else in storage/s3 talks to the SDK directly.

import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ResourceError, StxError } from '../../proto/errors.js';

/** A conditional write found another version than the one it was conditioned on (HTTP 412). */
export class PreconditionFailed extends Error {}

export interface ObjectInfo {
  readonly size: number;
  /** Without quotes (RGW wants If-Match values so). */
  readonly etag: string;
  /** Milliseconds since the epoch, the store's clock. */
  readonly lastModified: number;
  readonly metadata: Readonly<Record<string, string>>;
}

export interface Listed {
  readonly keys: { readonly key: string; readonly size: number; readonly lastModified: number }[];
  /** Common prefixes ("folders") when listed with a delimiter, relative like the keys. */
  readonly folders: string[];
}

/** `fn` over `items`, at most `limit` at a time, results in order. */
export async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Pages one listing reads at most (1000 keys each): a bound, not a limit anyone should meet. */
const MAX_LIST_PAGES = 100_000;

function statusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('$metadata' in err)) return undefined;
  const meta = (err as { $metadata?: { httpStatusCode?: number } }).$metadata;
  return meta?.httpStatusCode;
}

function nameOf(err: unknown): string {
  return err instanceof Error ? err.name : 'unknown error';
}

function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^"|"$/g, '');
}

/** `key` for an x-amz-copy-source header: each component URL-encoded. */
function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

export class Objects {
  constructor(
    readonly client: S3Client,
    readonly bucket: string,
    readonly prefix: string,
  ) {}

  /** The error to throw for a failed call: 412 is PreconditionFailed, the rest IO_ERROR. */
  #fail(err: unknown, what: string, key: string): Error {
    if (err instanceof StxError) return err;
    if (statusOf(err) === 412) return new PreconditionFailed(`${what} s3://${this.bucket}/${this.prefix}${key}: the condition failed`);
    return new ResourceError('IO_ERROR', `${what} s3://${this.bucket}/${this.prefix}${key} failed (${nameOf(err)})`, { cause: err });
  }

  async checkBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      throw this.#fail(err, 'opening bucket', '');
    }
  }

  /** The object's bytes (or `range` [from, to) of them), or null if there is none. */
  async get(key: string, range?: { from: number; to: number }): Promise<{ body: Buffer; etag: string } | null> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, ...(range === undefined ? {} : { Range: `bytes=${range.from}-${range.to - 1}` }) }),
      );
      const bytes = res.Body === undefined ? new Uint8Array(0) : await res.Body.transformToByteArray();
      return { body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), etag: unquote(res.ETag) };
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw this.#fail(err, 'reading', key);
    }
  }

  /** Range [from, to) of the object version `etag` (a replaced object fails: PreconditionFailed). */
  async getRange(key: string, from: number, to: number, etag?: string): Promise<Buffer> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Range: `bytes=${from}-${to - 1}`, ...(etag === undefined ? {} : { IfMatch: etag }) }),
      );
      const bytes = res.Body === undefined ? new Uint8Array(0) : await res.Body.transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      throw this.#fail(err, 'reading', key);
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      return { size: res.ContentLength ?? 0, etag: unquote(res.ETag), lastModified: res.LastModified?.getTime() ?? 0, metadata: res.Metadata ?? {} };
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw this.#fail(err, 'looking up', key);
    }
  }

  /**
   * Writes the object; with `ifMatch` only over that version, with `ifNoneMatch` only where there
   * is none (else PreconditionFailed). Returns the new ETag.
   */
  async put(key: string, body: Buffer, options: { ifMatch?: string | undefined; ifNoneMatch?: boolean; metadata?: Record<string, string> } = {}): Promise<string> {
    try {
      const res = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.prefix + key,
          Body: body,
          ContentLength: body.length,
          ...(options.ifMatch === undefined ? {} : { IfMatch: options.ifMatch }),
          ...(options.ifNoneMatch === true ? { IfNoneMatch: '*' } : {}),
          ...(options.metadata === undefined ? {} : { Metadata: options.metadata }),
        }),
      );
      return unquote(res.ETag);
    } catch (err) {
      throw this.#fail(err, 'writing', key);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    } catch (err) {
      if (statusOf(err) === 404) return;
      throw this.#fail(err, 'deleting', key);
    }
  }

  /** Deletes the object if it is still version `etag` (else nothing: someone else changed it). */
  async deleteIf(key: string, etag: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, IfMatch: etag }));
    } catch (err) {
      if (statusOf(err) === 404 || statusOf(err) === 412) return;
      throw this.#fail(err, 'deleting', key);
    }
  }

  /** Keys (and with `delimiter`, folders) under `under` (relative), every page of them. */
  async list(under: string, delimiter?: string, maxKeys?: number): Promise<Listed> {
    const keys: Listed['keys'] = [];
    const folders: string[] = [];
    let token: string | undefined;
    try {
      for (let page = 0; page < MAX_LIST_PAGES; page++) {
        const res = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + under,
            ...(delimiter === undefined ? {} : { Delimiter: delimiter }),
            ...(maxKeys === undefined ? {} : { MaxKeys: maxKeys }),
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
        for (const c of res.Contents ?? []) {
          if (c.Key !== undefined) keys.push({ key: c.Key.slice(this.prefix.length), size: c.Size ?? 0, lastModified: c.LastModified?.getTime() ?? 0 });
        }
        for (const p of res.CommonPrefixes ?? []) if (p.Prefix !== undefined) folders.push(p.Prefix.slice(this.prefix.length));
        token = res.IsTruncated === true ? res.NextContinuationToken : undefined;
        if (token === undefined || maxKeys !== undefined) break;
      }
    } catch (err) {
      throw this.#fail(err, 'listing', under);
    }
    return { keys, folders };
  }

  /** Starts a multipart upload to `key` (with `metadata` for the object it makes); its id. */
  async createUpload(key: string, metadata?: Record<string, string>): Promise<string> {
    try {
      const res = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.prefix + key, ...(metadata === undefined ? {} : { Metadata: metadata }) }));
      if (res.UploadId === undefined) throw new ResourceError('IO_ERROR', 'CreateMultipartUpload gave no upload id');
      return res.UploadId;
    } catch (err) {
      throw this.#fail(err, 'starting an upload to', key);
    }
  }

  /** Writes part `part` of upload `id`; its ETag (unquoted). */
  async uploadPart(key: string, id: string, part: number, body: Buffer): Promise<string> {
    try {
      const res = await this.client.send(new UploadPartCommand({ Bucket: this.bucket, Key: this.prefix + key, UploadId: id, PartNumber: part, Body: body, ContentLength: body.length }));
      return unquote(res.ETag);
    } catch (err) {
      throw this.#fail(err, `writing part ${part} of`, key);
    }
  }

  /** Copies bytes [from, to) of object `source` as part `part` of upload `id`; its ETag (unquoted). */
  async copyPart(key: string, id: string, part: number, source: string, from: number, to: number): Promise<string> {
    try {
      const res = await this.client.send(
        new UploadPartCopyCommand({ Bucket: this.bucket, Key: this.prefix + key, UploadId: id, PartNumber: part, CopySource: copySource(this.bucket, this.prefix + source), CopySourceRange: `bytes=${from}-${to - 1}` }),
      );
      return unquote(res.CopyPartResult?.ETag);
    } catch (err) {
      throw this.#fail(err, `copying part ${part} of`, key);
    }
  }

  /** The parts upload `id` holds (number, ETag unquoted, size), in order; null if there is no such upload. */
  async listParts(key: string, id: string): Promise<{ part: number; etag: string; size: number }[] | null> {
    const parts: { part: number; etag: string; size: number }[] = [];
    let marker: string | undefined;
    try {
      for (let page = 0; page < MAX_LIST_PAGES; page++) {
        const res = await this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key: this.prefix + key, UploadId: id, ...(marker === undefined ? {} : { PartNumberMarker: marker }) }));
        for (const p of res.Parts ?? []) parts.push({ part: p.PartNumber ?? 0, etag: unquote(p.ETag), size: p.Size ?? 0 });
        marker = res.IsTruncated === true ? res.NextPartNumberMarker : undefined;
        if (marker === undefined) break;
      }
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw this.#fail(err, 'listing the parts of', key);
    }
    return parts.sort((x, y) => x.part - y.part);
  }

  /** Completes upload `id` with `parts` (number and ETag, in order): `key` is then their object. */
  async completeUpload(key: string, id: string, parts: readonly { part: number; etag: string }[]): Promise<void> {
    try {
      await this.client.send(
        new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: this.prefix + key, UploadId: id, MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.part, ETag: p.etag })) } }),
      );
    } catch (err) {
      throw this.#fail(err, 'completing the upload to', key);
    }
  }

  /** Drops upload `id` and its parts (none left: nothing). */
  async abortUpload(key: string, id: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.prefix + key, UploadId: id }));
    } catch (err) {
      if (statusOf(err) === 404) return;
      throw this.#fail(err, 'dropping the upload to', key);
    }
  }

  /** Unfinished multipart uploads under `under` (relative keys), every page of them. */
  async listUploads(under: string): Promise<{ key: string; id: string; initiated: number }[]> {
    const uploads: { key: string; id: string; initiated: number }[] = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    try {
      for (let page = 0; page < MAX_LIST_PAGES; page++) {
        const res = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.prefix + under, ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker, UploadIdMarker: idMarker }) }),
        );
        for (const u of res.Uploads ?? []) {
          if (u.Key !== undefined && u.UploadId !== undefined) uploads.push({ key: u.Key.slice(this.prefix.length), id: u.UploadId, initiated: u.Initiated?.getTime() ?? 0 });
        }
        if (res.IsTruncated !== true || res.NextKeyMarker === undefined) break;
        keyMarker = res.NextKeyMarker;
        idMarker = res.NextUploadIdMarker;
      }
    } catch (err) {
      throw this.#fail(err, 'listing the uploads under', under);
    }
    return uploads;
  }

  /**
   * Makes `to` a copy of object `from` with `metadata` (CopyObject: RGW shares a large object's
   * data between the two rather than copying it). Readers see the old object or the whole new one.
   */
  async copy(to: string, from: string, metadata: Record<string, string>): Promise<void> {
    try {
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: this.prefix + to, CopySource: copySource(this.bucket, this.prefix + from), MetadataDirective: 'REPLACE', Metadata: metadata }));
    } catch (err) {
      throw this.#fail(err, 'publishing', to);
    }
  }
}

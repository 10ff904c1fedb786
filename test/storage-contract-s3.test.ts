// The storage contract (storage-contract.ts) against the S3 backend on a real Ceph RADOS Gateway
// started for this file (support/ceph.ts): one cluster and bucket, a fresh key prefix per test.
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { after, before } from 'node:test';
import { createS3Client } from '../src/storage/s3/client.js';
import { S3Backend } from '../src/storage/s3/backend.js';
import { startCeph, type CephCluster } from './support/ceph.js';
import { storageContract } from './storage-contract.js';

const BUCKET = 'contract';
let ceph: CephCluster | undefined;
let client: S3Client | undefined;

before(async () => {
  ceph = await startCeph();
  client = createS3Client({ endpoint: ceph.endpoint, region: ceph.region, credentials: ceph });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

after(async () => {
  client?.destroy();
  await ceph?.stop();
});

let stores = 0;
storageContract('s3 (Ceph RGW)', () => {
  if (client === undefined) throw new Error('no cluster');
  const s3 = client;
  const prefix = `store-${stores++}/`;
  const make = (): S3Backend => new S3Backend({ client: s3, bucket: BUCKET, prefix });
  return Promise.resolve({
    backend: make(),
    restart: async () => {
      const again = make();
      await again.init();
      return again;
    },
    cleanup: () => Promise.resolve(),
    directories: async () => {
      const { keys } = await make().objects.list('');
      const dirs = new Set<string>();
      for (const { key } of keys) {
        if (key.startsWith('.stx/')) continue;
        const parts = key.split('/');
        for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
      }
      return [...dirs].sort();
    },
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdServer, etcdBinary, startEtcd } from '../../support/etcd-server.js';

const bin = etcdBinary();

describe.skipIf(!bin.available)(`etcd test server ${bin.skipReason}`, () => {
  let etcd: EtcdServer;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('starts healthy on loopback, restarts on the same port and compacts', async () => {
    expect(etcd.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const rev = await etcd.revision();
    expect(rev).toBeGreaterThanOrEqual(1);
    await etcd.restart();
    expect(etcd.running).toBe(true);
    expect(await etcd.revision()).toBe(rev);
    await expect(etcd.compact()).resolves.toBe(rev);
  });
});

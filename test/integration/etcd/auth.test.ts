import { MeshError } from '@proxyless/core';
import { seededRandom } from '@proxyless/core/testing';
import { createMesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createEtcdRegistrar,
  createEtcdResolver,
  type EtcdRegistrar,
  type EtcdResolver,
} from '../../../packages/discovery/src/etcd/index.js';
import { type EtcdServer, etcdBinary, startEtcd } from '../../support/etcd-server.js';
import { startServer } from '../../support/http-server.js';
import { record, sameIds } from './helpers.js';

const bin = etcdBinary();
const PREFIX = '/proxyless/services/';

describe.skipIf(!bin.available)(`etcd with authentication (real etcd) ${bin.skipReason}`, () => {
  let etcd: EtcdServer;
  const owned: Array<EtcdResolver | EtcdRegistrar> = [];
  const opts = (password: string) => ({
    endpoints: [etcd.endpoint],
    username: 'root',
    password,
    backoff: { baseMs: 20, capMs: 200 },
    random: seededRandom(1),
  });

  beforeAll(async () => {
    etcd = await startEtcd();
    await etcd.enableAuth('s3cret');
    await etcd.put(`${PREFIX}secure/a`, JSON.stringify({ address: '10.0.0.1', port: 80 }));
  });
  afterAll(async () => {
    await Promise.all(owned.map((o) => o.close()));
    await etcd?.stop();
  });

  it('discovers and registers with a user name and password', async () => {
    const resolver = createEtcdResolver(opts('s3cret'));
    const registrar = createEtcdRegistrar({ ...opts('s3cret'), leaseTtlSeconds: 5 });
    owned.push(resolver, registrar);
    const rec = record(resolver, 'secure');
    await rec.until((u) => sameIds(u, ['a']), 'a');
    const inst = await registrar.register({ service: 'secure', id: 'b', address: '10.0.0.2', port: 80 });
    await rec.until((u) => sameIds(u, ['a', 'b']), 'a, b');
    await inst.deregister();
    await rec.until((u) => sameIds(u, ['a']), 'a after deregistration');
    rec.dispose();
  });

  it('reports a wrong password as an error update without any endpoints', async () => {
    const resolver = createEtcdResolver(opts('wrong'));
    owned.push(resolver);
    const rec = record(resolver, 'secure');
    const u = await rec.until((x) => x.kind === 'error', 'an error update');
    expect(u.kind === 'error' && u.error.code).toBe('MESH_REGISTRY_UNAVAILABLE');
    expect(u.kind === 'error' && u.error.message).toMatch(/auth/i);
    expect(u.kind === 'error' && u.error.message).not.toContain('wrong');
    rec.dispose();
  });

  it('fails the calls of a mesh with a wrong password at once, not after the resolve timeout', async () => {
    // A refused password waited out the resolve timeout (here 120 s, past the test's timeout)
    // before the call failed; the registry's answer is final until the configuration changes.
    const mesh = createMesh({
      env: {
        MESH_REGISTRY: 'etcd',
        MESH_ETCD_ENDPOINTS: etcd.endpoint,
        MESH_ETCD_USERNAME: 'root',
        MESH_ETCD_PASSWORD: 'not-the-password',
      },
      resolveTimeoutMs: 120_000,
    });
    try {
      const error = await mesh.request('http://secure/').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(MeshError.is(error, 'MESH_NO_ENDPOINTS')).toBe(true);
      const cause = (error as MeshError).cause as MeshError;
      expect(MeshError.is(cause, 'MESH_REGISTRY_UNAVAILABLE')).toBe(true);
      expect(cause.details.reason).toBe('access_denied');
      expect(cause.message).toMatch(/authentication failed.*MESH_ETCD_PASSWORD/);
      expect(cause.message).not.toContain('not-the-password');
      // A later call fails at once too (the resolver keeps trying meanwhile).
      await expect(mesh.request('http://secure/')).rejects.toMatchObject({ code: 'MESH_NO_ENDPOINTS' });
    } finally {
      await mesh.close();
    }
  });

  it('a user that may read only the service keys calls through a mesh with MESH_ETCD_CONFIG_PREFIX=off', async () => {
    // The config entries' watch could not be turned off: such a user's mesh reported a failing
    // config source forever (and the default still reads /proxyless/config/, refused here).
    await etcd.addReader('svc-reader', 'r3ader', [PREFIX]);
    const server = await startServer('lp');
    await etcd.put(`${PREFIX}lp/a`, JSON.stringify({ address: '127.0.0.1', port: server.port }));
    const env = {
      MESH_REGISTRY: 'etcd',
      MESH_ETCD_ENDPOINTS: etcd.endpoint,
      MESH_ETCD_USERNAME: 'svc-reader',
      MESH_ETCD_PASSWORD: 'r3ader',
    };
    const withConfig = createMesh({ env });
    const off = createMesh({ env: { ...env, MESH_ETCD_CONFIG_PREFIX: 'off' } });
    const sourceErrors: MeshError[] = [];
    off.onEvent((e) => {
      if (e.type === 'config_source_error') sourceErrors.push(e.error);
    });
    try {
      const refused = new Promise<MeshError>((resolve) => {
        const sub = withConfig.onEvent((e) => {
          if (e.type === 'config_source_error') {
            sub.dispose();
            resolve(e.error);
          }
        });
      });
      expect((await refused).details.reason).toBe('access_denied');
      const res = await off.request('http://lp/');
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('lp');
      expect(sourceErrors).toEqual([]);
    } finally {
      await Promise.all([withConfig.close(), off.close()]);
      await server.close();
    }
  });

  it('after an etcd restart (its auth tokens gone) keeps watching its own key, and deregisters', async () => {
    // etcd cancelled the watch of the instance's key ("invalid auth token") after the restart: a
    // key deleted by hand was not written again, and deregister() never returned.
    const registrar = createEtcdRegistrar({ ...opts('s3cret'), leaseTtlSeconds: 5 });
    owned.push(registrar);
    const inst = await registrar.register({ service: 'restarted', id: 'r1', address: '10.0.0.9', port: 80 });
    const key = `${PREFIX}restarted/r1`;
    await etcd.restart();
    await etcd.del(key);
    await expect.poll(() => etcd.get(key), { timeout: 15_000, interval: 100 }).toBeDefined();
    await inst.deregister();
    expect(await etcd.get(key)).toBeUndefined();
  });

  it('after an etcd restart (its auth tokens gone) the resolver follows every watched service again', async () => {
    // The watches shared one stream: etcd cancelled the first one created again ("invalid auth
    // token"), and etcd3 then created none of the others, which waited for good without an event.
    const resolver = createEtcdResolver(opts('s3cret'));
    owned.push(resolver);
    const services = ['svc-a', 'svc-b', 'svc-c'];
    for (const s of services)
      await etcd.put(`${PREFIX}${s}/one`, JSON.stringify({ address: '10.0.0.1', port: 80 }));
    const recs = services.map((s) => record(resolver, s));
    await Promise.all(recs.map((r) => r.until((u) => sameIds(u, ['one']), 'one')));
    await etcd.restart();
    for (const s of services)
      await etcd.put(`${PREFIX}${s}/two`, JSON.stringify({ address: '10.0.0.2', port: 80 }));
    await Promise.all(recs.map((r) => r.until((u) => sameIds(u, ['one', 'two']), 'one, two', 20_000)));
    // And changes after that arrive through the watches.
    for (const s of services) await etcd.del(`${PREFIX}${s}/one`);
    await Promise.all(recs.map((r) => r.until((u) => sameIds(u, ['two']), 'two', 20_000)));
    for (const r of recs) r.dispose();
  });
});

import net from 'node:net';
import { type LogFields, type Logger, MeshError } from '@proxyless/core';
import { seededRandom } from '@proxyless/core/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createEtcdRegistrar,
  createEtcdResolver,
  type EtcdRegistrar,
  type EtcdResolver,
} from '../../../packages/discovery/src/etcd/index.js';
import { type EtcdServer, etcdBinary, startEtcd } from '../../support/etcd-server.js';
import { record, sameIds, uniqueService } from './helpers.js';

const bin = etcdBinary();
const PREFIX = '/proxyless/services/';

/** A logger whose lines can be awaited: `next('lease lost')` resolves on the next matching line. */
function eventLogger(): Logger & { next(text: string, timeoutMs?: number): Promise<LogFields | undefined> } {
  const waiters: Array<{ text: string; resolve: (f: LogFields | undefined) => void }> = [];
  const at = (message: string, fields?: LogFields): void => {
    for (const w of [...waiters]) {
      if (message.includes(w.text)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(fields);
      }
    }
  };
  return {
    debug: at,
    info: at,
    warn: at,
    error: at,
    next(text, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for log line "${text}"`)),
          timeoutMs,
        );
        waiters.push({
          text,
          resolve: (f) => {
            clearTimeout(timer);
            resolve(f);
          },
        });
      });
    },
  };
}

describe.skipIf(!bin.available)(`etcd registrar against a real etcd ${bin.skipReason}`, () => {
  let etcd: EtcdServer;
  const owned: Array<EtcdRegistrar | EtcdResolver> = [];
  const registrar = (ttl = 2, logger?: Logger) => {
    const r = createEtcdRegistrar({
      endpoints: [etcd.endpoint],
      leaseTtlSeconds: ttl,
      ...(logger ? { logger } : {}),
      backoff: { baseMs: 20, capMs: 200 },
      random: seededRandom(5),
    });
    owned.push(r);
    return r;
  };
  const resolver = () => {
    const r = createEtcdResolver({
      endpoints: [etcd.endpoint],
      backoff: { baseMs: 20, capMs: 200 },
      random: seededRandom(9),
    });
    owned.push(r);
    return r;
  };

  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterEach(async () => {
    await Promise.all(owned.splice(0).map((o) => o.close()));
    if (!etcd.running) await etcd.resume();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('writes the instance under a lease, and a resolver discovers it', async () => {
    const svc = uniqueService('reg');
    const reg = registrar();
    const inst = await reg.register({
      service: svc,
      id: 'i-1',
      address: '10.0.0.7',
      port: 8443,
      tags: ['v2'],
      metadata: { team: 'pay' },
      zone: 'eu-1',
      weights: { passing: 5, warning: 1 },
    });
    expect(inst.id).toBe('i-1');
    expect(inst.key).toBe(`${PREFIX}${svc}/i-1`);
    const stored = await etcd.get(inst.key);
    expect(stored?.lease).toBe(inst.leaseId);
    expect(stored?.lease).not.toBe('0');
    expect(JSON.parse(stored?.value ?? '{}')).toEqual({
      id: 'i-1',
      address: '10.0.0.7',
      port: 8443,
      health: 'passing',
      weight: 5,
      zone: 'eu-1',
      tags: ['v2'],
      metadata: { team: 'pay' },
    });
    const rec = record(resolver(), svc);
    const u = await rec.until(
      (x) => x.kind === 'endpoints' && x.set.endpoints.length === 1,
      'the registered instance',
    );
    expect(u.kind === 'endpoints' && u.set.endpoints[0]).toMatchObject({
      id: 'i-1',
      address: '10.0.0.7',
      port: 8443,
      weight: 5,
      zone: 'eu-1',
    });
    rec.dispose();
  });

  it('a member of the cluster that is down does not fail calls a live member can serve', async () => {
    // The first endpoint listed refuses connections (a member down). Each call used to run once on
    // a member drawn at random: registrations failed, a resolver reported errors before its first
    // answer, and close() left keys whose revoke went to the dead member.
    const dead = await new Promise<number>((resolve) => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1', () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const endpoints = [`127.0.0.1:${dead}`, etcd.endpoint];
    const svc = uniqueService('dead-member');
    const reg = createEtcdRegistrar({ endpoints, leaseTtlSeconds: 5, random: seededRandom(3) });
    owned.push(reg);
    const outcomes: string[] = [];
    for (let i = 0; i < 8; i++)
      outcomes.push(
        await reg.register({ service: svc, id: `i-${i}`, address: '10.0.0.1', port: 9000 + i }).then(
          () => 'ok',
          (error: MeshError) => error.code,
        ),
      );
    expect(outcomes).toEqual(Array(8).fill('ok'));
    for (let i = 0; i < 6; i++) {
      const r = createEtcdResolver({ endpoints, random: seededRandom(i) });
      owned.push(r);
      const rec = record(r, svc);
      await rec.until((u) => u.kind === 'endpoints' && u.set.endpoints.length === 8, 'all 8 instances');
      expect(rec.updates.map((u) => u.kind)).toEqual(['endpoints']);
      rec.dispose();
    }
    await reg.close();
    owned.splice(owned.indexOf(reg), 1);
    expect(await etcd.keys(`${PREFIX}${svc}/`)).toEqual([]);
  });

  it('defaults the id to address:port and keeps the lease alive past its TTL', async () => {
    const svc = uniqueService('keepalive');
    const rec = record(resolver(), svc);
    const inst = await registrar(2).register({ service: svc, address: '10.0.0.8', port: 80 });
    expect(inst.id).toBe('10.0.0.8:80');
    const leaseId = inst.leaseId ?? '';
    const first = await etcd.leaseTtl(leaseId);
    expect(first.granted).toBeGreaterThanOrEqual(2);
    // A control key under a lease granted later with the same TTL and never kept alive: when
    // etcd deletes it (the watch reports it), ours must still be there, kept alive past its TTL.
    const control = await etcd.grantLease(first.granted);
    await etcd.put(`${PREFIX}${svc}/control`, JSON.stringify({ address: '10.0.0.9', port: 80 }), control);
    await rec.until((u) => sameIds(u, ['10.0.0.8:80', 'control']), 'both keys');
    await rec.until((u) => sameIds(u, ['10.0.0.8:80']), 'the control key expired, ours alive');
    expect((await etcd.leaseTtl(leaseId)).granted).toBeGreaterThan(0);
    expect((await etcd.get(inst.key))?.lease).toBe(leaseId);
    expect(inst.leaseId).toBe(leaseId);
    rec.dispose();
  });

  it('markUnhealthy sets health critical in the value; deregister revokes the lease and removes the key', async () => {
    const svc = uniqueService('drain');
    const rec = record(resolver(), svc);
    const inst = await registrar().register({
      service: svc,
      id: 'a',
      address: '10.0.0.9',
      port: 80,
      weights: { passing: 4, warning: 1 },
    });
    await rec.until(
      (u) => u.kind === 'endpoints' && u.set.endpoints[0]?.health === 'passing',
      'passing instance',
    );
    await inst.markUnhealthy('draining');
    const critical = await rec.until(
      (u) => u.kind === 'endpoints' && u.set.endpoints[0]?.health === 'critical',
      'critical instance',
    );
    expect(critical.kind === 'endpoints' && critical.set.endpoints[0]).toMatchObject({
      weight: 1,
      metadata: { 'health-note': 'draining' },
    });
    const leaseId = inst.leaseId ?? '';
    await inst.deregister();
    await inst.deregister(); // idempotent
    expect(await etcd.get(inst.key)).toBeUndefined();
    expect((await etcd.leaseTtl(leaseId)).granted).toBe(0);
    await rec.until((u) => u.kind === 'endpoints' && u.set.endpoints.length === 0, 'the instance removed');
    rec.dispose();
  });

  it('close() deregisters every instance', async () => {
    const svc = uniqueService('close');
    const reg = registrar();
    const a = await reg.register({ service: svc, id: 'a', address: '10.0.0.1', port: 80 });
    const b = await reg.register({ service: svc, id: 'b', address: '10.0.0.2', port: 80 });
    expect(await etcd.keys(`${PREFIX}${svc}/`)).toEqual([a.key, b.key]);
    await reg.close();
    expect(await etcd.keys(`${PREFIX}${svc}/`)).toEqual([]);
    await expect(reg.register({ service: svc, address: '10.0.0.3', port: 80 })).rejects.toMatchObject({
      code: 'MESH_CLOSED',
    });
  });

  it('re-creates the lease and the key when the lease is revoked behind its back', async () => {
    const svc = uniqueService('lost');
    const logger = eventLogger();
    const inst = await registrar(2, logger).register({
      service: svc,
      id: 'a',
      address: '10.0.0.1',
      port: 80,
    });
    await inst.markUnhealthy('draining');
    const oldLease = inst.leaseId ?? '';
    const again = logger.next('registered again');
    await etcd.revokeLease(oldLease);
    expect(await etcd.get(inst.key)).toBeUndefined();
    await again;
    const kv = await etcd.get(inst.key);
    expect(kv?.lease).toBe(inst.leaseId);
    expect(kv?.lease).not.toBe(oldLease);
    expect(inst.reRegistrations).toBe(1);
    // written again as it was: still critical
    expect(JSON.parse(kv?.value ?? '{}')).toMatchObject({ id: 'a', health: 'critical' });
  });

  it('writes its key again when it is deleted behind its back while the lease lives (probe46)', async () => {
    const svc = uniqueService('deleted');
    const logger = eventLogger();
    const inst = await registrar(5, logger).register({
      service: svc,
      id: 'a',
      address: '10.0.0.1',
      port: 80,
    });
    const again = logger.next('registered again');
    // Before: the key stayed deleted until the process restarted; the instance invisible.
    expect(await etcd.del(inst.key)).toBe(1);
    await again;
    const kv = await etcd.get(inst.key);
    expect(kv?.lease).toBe(inst.leaseId);
    expect(JSON.parse(kv?.value ?? '{}')).toMatchObject({ id: 'a', port: 80 });
    await inst.deregister();
    expect(await etcd.get(inst.key)).toBeUndefined();
  });

  it('refuses an id another live instance holds, and leaves that instance registered (probe46)', async () => {
    const svc = uniqueService('dup');
    const holder = registrar(5);
    const first = await holder.register({ service: svc, id: 'dup', address: '10.0.0.1', port: 9001 });
    // Before: both succeeded, the second wrote over the first, and its deregistration deleted the
    // key of the first, which never wrote it again.
    const refused = (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: unknown) => e as MeshError,
      );
    const other = await refused(
      registrar(5).register({ service: svc, id: 'dup', address: '10.0.0.2', port: 9002 }),
    );
    expect(other?.code).toBe('MESH_CONFIG_INVALID');
    expect(other?.details).toMatchObject({ field: 'id', value: 'dup' });
    expect(other?.message).toContain('another live instance');
    const same = await refused(holder.register({ service: svc, id: 'dup', address: '10.0.0.3', port: 9003 }));
    expect(same?.code).toBe('MESH_CONFIG_INVALID');
    const kv = await etcd.get(first.key);
    expect(kv?.lease).toBe(first.leaseId);
    expect(JSON.parse(kv?.value ?? '{}')).toMatchObject({ port: 9001 });
  });

  it('registers again after an outage longer than the lease', async () => {
    const svc = uniqueService('outage');
    const logger = eventLogger();
    const inst = await registrar(2, logger).register({
      service: svc,
      id: 'a',
      address: '10.0.0.1',
      port: 80,
    });
    const oldLease = inst.leaseId;
    const lost = logger.next('lease lost');
    await etcd.halt();
    await lost;
    expect(inst.leaseId).toBeUndefined();
    const again = logger.next('registered again');
    await etcd.resume();
    await again;
    const kv = await etcd.get(inst.key);
    expect(kv?.lease).toBe(inst.leaseId);
    expect(kv?.lease).not.toBe(oldLease);
    expect(inst.reRegistrations).toBe(1);
  });

  it('rejects registration with MESH_REGISTRY_UNAVAILABLE while etcd is down', async () => {
    const reg = registrar();
    await etcd.halt();
    const error = await reg
      .register({ service: uniqueService('down'), address: '10.0.0.1', port: 80 })
      .catch((e: unknown) => e);
    expect(MeshError.is(error, 'MESH_REGISTRY_UNAVAILABLE')).toBe(true);
  });

  it('rejects a bad registration naming every field', async () => {
    const reg = registrar();
    const error = await reg
      .register({
        service: 'bad/name',
        id: 'x/y',
        address: 'not a host',
        port: 0,
        tags: ['ok', 3 as unknown as string],
      })
      .catch((e: unknown) => e);
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    const fields = ((error as MeshError).details.issues ?? []).map((i) => i.field).sort();
    expect(fields).toEqual(['address', 'id', 'port', 'service', 'tags[1]']);
    expect((error as MeshError).message).toContain('"bad/name"');
  });
});

import { seededRandom } from '@proxyless/core/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEtcdResolver, type EtcdResolver } from '../../../packages/discovery/src/etcd/index.js';
import { type EtcdServer, etcdBinary, startEtcd } from '../../support/etcd-server.js';
import { record, sameIds, uniqueService } from './helpers.js';

const bin = etcdBinary();
const PREFIX = '/proxyless/services/';

describe.skipIf(!bin.available)(`etcd resolver against a real etcd ${bin.skipReason}`, () => {
  let etcd: EtcdServer;
  const resolvers: EtcdResolver[] = [];
  const newResolver = (extra: Parameters<typeof createEtcdResolver>[0] = {}) => {
    const r = createEtcdResolver({
      endpoints: [etcd.endpoint],
      backoff: { baseMs: 20, capMs: 200 },
      random: seededRandom(7),
      ...extra,
    });
    resolvers.push(r);
    return r;
  };
  const put = (service: string, id: string, value: unknown) =>
    etcd.put(`${PREFIX}${service}/${id}`, typeof value === 'string' ? value : JSON.stringify(value));

  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterEach(async () => {
    await Promise.all(resolvers.splice(0).map((r) => r.close()));
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('lists the endpoints of a service with their attributes', async () => {
    const svc = uniqueService('payments');
    await put(svc, 'a', {
      address: '10.0.0.1',
      port: 8080,
      weight: 3,
      zone: 'eu-1',
      tags: ['v2'],
      metadata: { team: 'pay' },
    });
    await put(svc, 'b', { address: '::1', port: 8081, health: 'warning' });
    await put(`${svc}x`, 'other', { address: '10.9.9.9', port: 1 }); // a service whose name extends this one
    const r = newResolver();
    const rec = record(r, svc);
    const u = await rec.until((x) => x.kind === 'endpoints', 'the first endpoint set');
    expect(u.kind).toBe('endpoints');
    if (u.kind !== 'endpoints') return;
    expect(u.set.source).toBe('etcd');
    expect(u.set.stale).toBe(false);
    const byId = Object.fromEntries(u.set.endpoints.map((e) => [e.id, e]));
    expect(Object.keys(byId).sort()).toEqual(['a', 'b']);
    expect(byId.a).toMatchObject({
      address: '10.0.0.1',
      port: 8080,
      weight: 3,
      zone: 'eu-1',
      tags: ['v2'],
      metadata: { team: 'pay' },
      health: 'passing',
    });
    expect(byId.b).toMatchObject({ address: '::1', port: 8081, weight: 1, health: 'warning' });
    rec.dispose();
  });

  it('applies an empty answer from a healthy etcd (the service has no endpoints)', async () => {
    const r = newResolver();
    const rec = record(r, uniqueService('empty'));
    const u = await rec.until((x) => x.kind === 'endpoints', 'an empty set');
    expect(u.kind === 'endpoints' && u.set.endpoints.length).toBe(0);
    rec.dispose();
  });

  it('follows live additions, changes and removals through the watch', async () => {
    const svc = uniqueService('live');
    await put(svc, 'a', { address: '10.0.0.1', port: 80 });
    const r = newResolver();
    const rec = record(r, svc);
    await rec.until((u) => sameIds(u, ['a']), 'a');
    await put(svc, 'b', { address: '10.0.0.2', port: 80 });
    await rec.until((u) => sameIds(u, ['a', 'b']), 'a, b');
    await put(svc, 'b', { address: '10.0.0.2', port: 80, weight: 5 });
    const changed = await rec.until(
      (u) => u.kind === 'endpoints' && u.set.endpoints.some((e) => e.id === 'b' && e.weight === 5),
      'b with weight 5',
    );
    expect(changed.kind === 'endpoints' && changed.set.version).toBeGreaterThan(2);
    await etcd.del(`${PREFIX}${svc}/a`);
    await rec.until((u) => sameIds(u, ['b']), 'b only');
    await etcd.del(`${PREFIX}${svc}/b`);
    await rec.until((u) => sameIds(u, []), 'no endpoints');
    rec.dispose();
  });

  it('shares one upstream watch among watchers and replays the current set to late watchers', async () => {
    const svc = uniqueService('shared');
    await put(svc, 'a', { address: '10.0.0.1', port: 80 });
    const r = newResolver();
    const first = record(r, svc);
    await first.until((u) => sameIds(u, ['a']), 'a (first watcher)');
    const second = record(r, svc);
    const replay = await second.until((u) => sameIds(u, ['a']), 'a (late watcher)');
    expect(replay.kind === 'endpoints' && replay.set.version).toBe(1);
    await put(svc, 'b', { address: '10.0.0.2', port: 80 });
    await Promise.all([
      first.until((u) => sameIds(u, ['a', 'b']), 'a, b'),
      second.until((u) => sameIds(u, ['a', 'b']), 'a, b'),
    ]);
    first.dispose();
    second.dispose();
  });

  it('honours a custom prefix and never delivers after dispose or close', async () => {
    const svc = uniqueService('custom');
    await etcd.put(`/apps/mesh/${svc}/x`, JSON.stringify({ address: '10.1.1.1', port: 9000 }));
    const r = newResolver({ prefix: '/apps/mesh' });
    const rec = record(r, svc);
    await rec.until((u) => sameIds(u, ['x']), 'x');
    rec.dispose();
    const count = rec.updates.length;
    await etcd.put(`/apps/mesh/${svc}/y`, JSON.stringify({ address: '10.1.1.2', port: 9000 }));
    const other = record(r, svc);
    await other.until((u) => sameIds(u, ['x', 'y']), 'x, y on a new watch');
    await r.close();
    await etcd.put(`/apps/mesh/${svc}/z`, JSON.stringify({ address: '10.1.1.3', port: 9000 }));
    const afterClose = other.updates.length;
    // A write after close reaches nobody: a fresh resolver sees it, the closed one does not.
    const probe = record(newResolver({ prefix: '/apps/mesh' }), svc);
    await probe.until((u) => sameIds(u, ['x', 'y', 'z']), 'x, y, z on a fresh resolver');
    expect(rec.updates.length).toBe(count);
    expect(other.updates.length).toBe(afterClose);
    probe.dispose();
  });

  it('matches bare single-label names and names under the configured suffix', () => {
    const r = newResolver({ suffix: 'svc.etcd' });
    expect(r.match('payments')).toBe('payments');
    expect(r.match('payments.svc.etcd')).toBe('payments');
    expect(r.match('PAYMENTS.svc.etcd')).toBe('payments');
    expect(r.match('payments.example.com')).toBeUndefined();
    expect(r.match('localhost')).toBeUndefined();
    expect(r.match('a.b.svc.etcd')).toBeUndefined();
    const strict = newResolver({ matchBareNames: false });
    expect(strict.match('payments')).toBeUndefined();
  });
});

/**
 * Consul health answers through the whole watch loop, against the Consul double: an address
 * undici cannot dial rejects the answer (the last good set stays, marked stale) instead of being
 * applied and failing every request with ERR_INVALID_URL; an instance of weight 0 is left out
 * while the rest of the answer is applied.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createConsulResolver } from '../../../packages/discovery/src/consul/resolver.js';
import { type ConsulDouble, startConsulDouble } from '../../consul-double/server.js';
import { Watcher } from '../consul/helpers.js';

let double: ConsulDouble;
beforeAll(async () => {
  double = await startConsulDouble();
});
afterAll(async () => {
  await double.close();
});

const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

let n = 0;
function setup(): { name: string; w: Watcher } {
  const name = `payload-${process.pid}-${n++}`;
  const resolver = createConsulResolver({
    address: double.address,
    waitMs: 5_000,
    minIntervalMs: 0,
    backoff: { baseMs: 5, capMs: 20 },
  });
  const w = new Watcher(resolver, name);
  closers.push(() => resolver.close());
  closers.push(() => w.dispose());
  closers.push(() => double.garbage(name, undefined));
  return { name, w };
}

function entry(
  id: string,
  o: { address?: string; port?: number; weights?: { Passing: number; Warning: number } } = {},
) {
  return {
    Node: { Node: 'node-1', Address: '10.0.0.1', Meta: {} },
    Service: {
      ID: id,
      Service: 'svc',
      Address: o.address ?? '10.0.0.5',
      Port: o.port ?? 8080,
      Tags: [],
      Meta: {},
      Weights: o.weights ?? { Passing: 1, Warning: 1 },
    },
    Checks: [{ CheckID: 'serfHealth', Status: 'passing' }],
  };
}

describe('Consul health answers (double)', () => {
  it('leaves out an instance of Weights.Passing 0 and applies the rest of the answer', async () => {
    const { name, w } = setup();
    double.garbage(name, JSON.stringify([entry('a', { port: 8080 })]));
    await w.endpoints((ids) => ids.join() === 'a');
    const at = w.updates.length;
    double.garbage(
      name,
      JSON.stringify([entry('a', { port: 8081 }), entry('z', { weights: { Passing: 0, Warning: 1 } })]),
    );
    const u = await w.next(() => true, at);
    expect(u.kind === 'error' ? u.error.message : undefined).toBeUndefined();
    expect(u.kind === 'endpoints' && u.set.endpoints.map((e) => [e.id, e.port])).toEqual([['a', 8081]]);
    expect(u.kind === 'endpoints' && u.set.stale).toBe(false);
  });

  it.each(['127.0.0.1:80', '[::1]:80', '999.1.1.1', '1.2.3', 'fe80::1%eth0', '-bad', 'a..b'])(
    'rejects an answer whose Service.Address is %j, keeping the last good set',
    async (bad) => {
      const { name, w } = setup();
      double.garbage(name, JSON.stringify([entry('a')]));
      await w.endpoints((ids) => ids.join() === 'a');
      const at = w.updates.length;
      double.garbage(name, JSON.stringify([entry('a'), entry('b', { address: bad })]));
      const u = await w.next(() => true, at);
      expect(u.kind).toBe('error');
      if (u.kind !== 'error') return;
      expect(u.error.code).toBe('MESH_REGISTRY_PAYLOAD_INVALID');
      expect(u.error.details.field).toBe('[1].Service.Address');
      expect(u.error.details.value).toBe(bad);
      expect(u.error.message).toContain(JSON.stringify(bad));
      expect(u.lastGood?.stale).toBe(true);
      expect(u.lastGood?.endpoints.map((e) => [e.id, e.address])).toEqual([['a', '10.0.0.5']]);
    },
  );
});

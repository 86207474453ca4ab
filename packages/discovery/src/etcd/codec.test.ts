import { MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { createEtcdClient, normalizeEtcdEndpoint, normalizePrefix } from './client.js';
import { EtcdServiceState, encodeRegistration, parseEtcdValue } from './codec.js';
import { createEtcdRegistrar } from './registrar.js';
import { createEtcdResolver } from './resolver.js';

const P = '/proxyless/services/pay/';

describe('etcd values', () => {
  it('parses a value, defaulting the id to the key suffix', () => {
    const r = parseEtcdValue(`${P}a1`, JSON.stringify({ address: '10.0.0.1', port: 80 }), 'a1');
    expect(r.endpoint).toMatchObject({
      id: 'a1',
      address: '10.0.0.1',
      port: 80,
      weight: 1,
      health: 'passing',
    });
    const own = parseEtcdValue(`${P}a1`, JSON.stringify({ id: 'x', address: '10.0.0.1', port: 80 }), 'a1');
    expect(own.endpoint?.id).toBe('x');
  });

  it('reads a priority level, and refuses one that is not an integer 0..65535, naming the key and value', () => {
    const r = parseEtcdValue(`${P}b1`, JSON.stringify({ address: '10.0.0.9', port: 80, priority: 2 }), 'b1');
    expect(r.endpoint?.priority).toBe(2);
    const bad = parseEtcdValue(
      `${P}b2`,
      JSON.stringify({ address: '10.0.0.9', port: 80, priority: 'backup' }),
      'b2',
    );
    expect(bad.endpoint).toBeUndefined();
    expect(JSON.stringify(bad)).toContain('priority');
    expect(JSON.stringify(bad)).toContain('backup');
  });

  it('rejects a key that is the service prefix itself and names no endpoint id', () => {
    // It gave an endpoint with the empty id.
    const state = new EtcdServiceState('pay', P);
    state.reset([
      { key: `${P}a`, value: JSON.stringify({ address: '10.0.0.1', port: 80 }) },
      { key: P, value: JSON.stringify({ address: '10.0.0.2', port: 80 }) },
    ]);
    const r = state.result();
    expect(r.error?.code).toBe('MESH_REGISTRY_PAYLOAD_INVALID');
    expect(r.error?.message).toContain(`${P}: expected a key <prefix><service>/<id> naming the endpoint`);
    state.put(P, JSON.stringify({ id: 'b', address: '10.0.0.2', port: 80 }));
    expect(
      state
        .result()
        .endpoints?.map((e) => e.id)
        .sort(),
    ).toEqual(['a', 'b']);
  });

  it('reuses parsed entries whose mod_revision did not change, and re-parses changed ones', () => {
    const state = new EtcdServiceState('pay', P);
    state.reset([
      { key: `${P}a`, value: JSON.stringify({ address: '10.0.0.1', port: 80 }), mod_revision: '5' },
    ]);
    const first = state.result().endpoints?.[0];
    state.reset([
      { key: `${P}a`, value: JSON.stringify({ address: '10.0.0.1', port: 80 }), mod_revision: '5' },
    ]);
    expect(state.result().endpoints?.[0]).toBe(first);
    state.reset([
      { key: `${P}a`, value: JSON.stringify({ address: '10.0.0.2', port: 80 }), mod_revision: '6' },
    ]);
    expect(state.result().endpoints?.[0]?.address).toBe('10.0.0.2');
  });

  it('rejects while any key is bad and recovers when it is deleted', () => {
    const state = new EtcdServiceState('pay', P);
    state.put(`${P}a`, JSON.stringify({ address: '10.0.0.1', port: 80 }));
    state.put(`${P}b`, '{');
    const bad = state.result();
    expect(MeshError.is(bad.error, 'MESH_REGISTRY_PAYLOAD_INVALID')).toBe(true);
    expect(bad.error?.message).toContain(`${P}b`);
    state.delete(`${P}b`);
    expect(state.result().endpoints?.map((e) => e.id)).toEqual(['a']);
  });

  it('encodes a registration the way the resolver reads it', () => {
    const reg = {
      service: 'pay',
      address: '10.0.0.1',
      port: 80,
      tags: ['a'],
      weights: { passing: 3, warning: 1 },
    };
    const passing = JSON.parse(encodeRegistration(reg, 'i', 'passing'));
    expect(passing).toEqual({
      id: 'i',
      address: '10.0.0.1',
      port: 80,
      health: 'passing',
      weight: 3,
      tags: ['a'],
    });
    const critical = JSON.parse(encodeRegistration(reg, 'i', 'critical', 'draining'));
    expect(critical).toMatchObject({
      health: 'critical',
      weight: 1,
      metadata: { 'health-note': 'draining' },
    });
    expect(parseEtcdValue(`${P}i`, encodeRegistration(reg, 'i', 'critical', 'x'), 'i').endpoint?.health).toBe(
      'critical',
    );
  });
});

describe('etcd connection options', () => {
  it('normalises endpoints and prefixes', () => {
    expect(normalizeEtcdEndpoint('127.0.0.1:2379', false)).toBe('http://127.0.0.1:2379');
    expect(normalizeEtcdEndpoint('etcd-1:2379', true)).toBe('https://etcd-1:2379');
    expect(normalizeEtcdEndpoint('[::1]:2379', false)).toBe('http://[::1]:2379');
    expect(normalizeEtcdEndpoint('https://etcd-1:2379/', false)).toBe('https://etcd-1:2379');
    expect(normalizePrefix('/apps')).toBe('/apps/');
    expect(normalizePrefix(undefined)).toBe('/proxyless/services/');
  });

  it('rejects bad connection options naming the field and value', () => {
    expect(() => createEtcdClient({ endpoints: ['nope'] })).toThrow(/endpoints\[0\].*"nope"/);
    expect(() => createEtcdClient({ username: 'u' })).toThrow(/password/);
    expect(() => createEtcdClient({ caCert: '/nonexistent/ca.pem' })).toThrow(/caCert.*nonexistent/);
    expect(() => createEtcdResolver({ suffix: 'bad suffix!' })).toThrow(/suffix/);
  });

  it('names every bad connection option at once, those it silently took included (probe46)', () => {
    const fields = (fn: () => unknown): Array<[string, unknown]> => {
      try {
        fn();
      } catch (error) {
        expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
        return ((error as MeshError).details.issues ?? []).map((i) => [i.field, i.value]);
      }
      return [];
    };
    // Before: a TypeError (a string), the first problem only, and accepted: a call timeout that
    // made every call fail as an outage, mixed schemes, user info and a path dropped silently.
    expect(fields(() => createEtcdClient({ endpoints: '127.0.0.1:2379' as never }))).toEqual([
      ['endpoints', '127.0.0.1:2379'],
    ]);
    expect(fields(() => createEtcdClient({ endpoints: ['nope'], username: 'u', callTimeoutMs: -5 }))).toEqual(
      [
        ['endpoints[0]', 'nope'],
        ['password', undefined],
        ['callTimeoutMs', -5],
      ],
    );
    expect(fields(() => createEtcdClient({ callTimeoutMs: 'abc' as never }))).toEqual([
      ['callTimeoutMs', 'abc'],
    ]);
    expect(
      fields(() => createEtcdClient({ endpoints: ['https://127.0.0.1:2379', 'http://127.0.0.1:2380'] })),
    ).toEqual([['endpoints', ['https://127.0.0.1:2379', 'http://127.0.0.1:2380']]]);
    // Named without its password.
    expect(fields(() => createEtcdClient({ endpoints: ['http://user:pw@127.0.0.1:2379'] }))).toEqual([
      ['endpoints[0]', 'http://user:***@127.0.0.1:2379'],
    ]);
    expect(fields(() => createEtcdClient({ endpoints: ['http://127.0.0.1:2379/v3'] }))).toEqual([
      ['endpoints[0]', 'http://127.0.0.1:2379/v3'],
    ]);
    expect(
      fields(() => createEtcdRegistrar({ endpoints: ['nope'], username: 'u', leaseTtlSeconds: 0 })),
    ).toEqual([
      ['leaseTtlSeconds', 0],
      ['endpoints[0]', 'nope'],
      ['password', undefined],
    ]);
  });

  it('matches hosts without contacting etcd', async () => {
    const r = createEtcdResolver({ endpoints: ['127.0.0.1:1'], suffix: '.mesh.internal' });
    expect(r.match('payments')).toBe('payments');
    expect(r.match('payments.mesh.internal')).toBe('payments');
    expect(r.match('10')).toBeUndefined();
    expect(r.match('127.0.0.1')).toBeUndefined();
    await r.close();
    await r.close();
  });
});

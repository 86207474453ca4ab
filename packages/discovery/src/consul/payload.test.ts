/**
 * `health/service` answers: the address rule (the one etcd values and the config file use) and
 * weight 0 (the instance is left out, the rest of the answer applied).
 */
import { MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { parseHealthPayload } from './payload.js';

interface EntryOptions {
  address?: string;
  nodeAddress?: string;
  weights?: { Passing: unknown; Warning: unknown };
  status?: string;
}

/** One health entry as Consul answers it (see consul-api.md §3.1). */
function entry(id: string, o: EntryOptions = {}) {
  return {
    Node: {
      ID: '40e4a748-2192-161a-0510-9bf59fe950b5',
      Node: 'node-1',
      Address: o.nodeAddress ?? '10.0.0.1',
      Datacenter: 'dc1',
      TaggedAddresses: { lan: '10.0.0.1', wan: '10.0.0.1' },
      Meta: {},
    },
    Service: {
      ID: id,
      Service: 'payments',
      Tags: [],
      Address: o.address ?? '10.0.0.5',
      Meta: {},
      Port: 8080,
      Weights: o.weights ?? { Passing: 1, Warning: 1 },
    },
    Checks: [
      { Node: 'node-1', CheckID: 'serfHealth', Status: 'passing', ServiceID: '' },
      { Node: 'node-1', CheckID: `service:${id}`, Status: o.status ?? 'passing', ServiceID: id },
    ],
  };
}

function rejection(payload: unknown): MeshError {
  try {
    parseHealthPayload(payload, 'consul health/service/payments', {}, 'payments');
  } catch (error) {
    expect(MeshError.is(error, 'MESH_REGISTRY_PAYLOAD_INVALID')).toBe(true);
    return error as MeshError;
  }
  throw new Error('expected the answer to be rejected');
}

describe('health/service addresses', () => {
  // Each of these passed the old `[^\s/?#@]+` test and then failed every request with undici's
  // ERR_INVALID_URL (or dialled something else than meant).
  it.each([
    '127.0.0.1:80',
    '[::1]:80',
    '999.1.1.1',
    '1.2.3',
    '::1%eth0',
    'fe80::1%eth0',
    '-bad',
    'a..b',
    'http://127.0.0.1',
    '127.0.0.1/8',
    'bad host',
  ])('rejects the whole answer for Service.Address %j, naming the field and value', (bad) => {
    const error = rejection([entry('a'), entry('b', { address: bad })]);
    expect(error.details.issues).toEqual([
      { field: '[1].Service.Address', expected: expect.any(String), value: bad },
    ]);
    expect(error.message).toContain(`[1].Service.Address: expected `);
    expect(error.message).toContain(JSON.stringify(bad));
  });

  it.each(['127.0.0.1:80', '999.1.1.1', 'fe80::1%eth0'])(
    'rejects a bad Node.Address %j used as the fallback, naming Node.Address',
    (bad) => {
      const error = rejection([entry('a'), entry('b', { address: '', nodeAddress: bad })]);
      expect(error.details.issues).toEqual([
        { field: '[1].Node.Address', expected: expect.any(String), value: bad },
      ]);
    },
  );

  it('says why a zone id is refused', () => {
    const error = rejection([entry('a', { address: 'fe80::1%eth0' })]);
    expect(error.message).toContain('[0].Service.Address: expected an IPv6 address without a zone id');
    expect(error.message).toContain("(%eth0) cannot be dialled by undici's URL-based pools");
  });

  it.each<[string, string]>([
    ['10.0.0.5', '10.0.0.5'],
    ['2001:db8::5', '2001:db8::5'],
    ['[2001:db8::5]', '2001:db8::5'],
    ['[::1]', '::1'],
    ['::ffff:10.0.0.1', '::ffff:10.0.0.1'],
    ['payments-1.node.dc1.consul', 'payments-1.node.dc1.consul'],
    ['host.example.com.', 'host.example.com.'],
    ['localhost', 'localhost'],
  ])('accepts %j as Consul returns it (dialled as %j)', (given, dialled) => {
    const p = parseHealthPayload([entry('a', { address: given })], 'x');
    expect(p.endpoints.map((e) => e.address)).toEqual([dialled]);
  });

  it('falls back to a valid Node.Address', () => {
    const p = parseHealthPayload([entry('a', { address: '', nodeAddress: 'fd00::7' })], 'x');
    expect(p.endpoints.map((e) => e.address)).toEqual(['fd00::7']);
  });
});

describe('health/service weights', () => {
  it('leaves out an instance whose Weights.Passing is 0 and applies the rest of the answer', () => {
    const p = parseHealthPayload([entry('a'), entry('z', { weights: { Passing: 0, Warning: 1 } })], 'x');
    expect(p.endpoints.map((e) => e.id)).toEqual(['a']);
    expect(p.skipped).toEqual([{ id: 'z', reason: 'weight 0' }]);
  });

  it('uses Weights.Warning for a warning instance whose Weights.Passing is 0', () => {
    const p = parseHealthPayload(
      [entry('w', { weights: { Passing: 0, Warning: 2 }, status: 'warning' })],
      'x',
    );
    expect(p.endpoints.map((e) => [e.id, e.weight])).toEqual([['w', 2]]);
  });

  it.each<[unknown]>([[-1], [1.5], ['1'], [65536], [null]])(
    'still rejects the whole answer for Weights.Passing %j',
    (bad) => {
      const error = rejection([entry('a'), entry('z', { weights: { Passing: bad, Warning: 1 } })]);
      expect(error.details.issues).toEqual([
        { field: '[1].Service.Weights.Passing', expected: expect.stringMatching(/^an integer/), value: bad },
      ]);
    },
  );
});

describe('health/service check statuses', () => {
  // Consul sends passing, warning or critical (consul-api.md §4.1); maintenance is a critical check
  // with a maintenance check ID (§3.1). `Status: "maintenance"` was accepted and the instance
  // silently dropped, against the whole-or-nothing rule.
  it.each(['maintenance', 'bogus', 'Passing'])('refuses Status %j naming the field', (status) => {
    const error = rejection([entry('a'), entry('b', { status })]);
    expect(error.details.issues?.map((i) => [i.field, i.value])).toEqual([['[1].Checks[1].Status', status]]);
    expect(error.message).not.toContain('maintenance,');
  });

  it('still leaves out an instance in maintenance (a maintenance check ID)', () => {
    const inMaintenance = entry('b');
    inMaintenance.Checks.push({
      Node: 'node-1',
      CheckID: '_service_maintenance:b',
      Status: 'critical',
      ServiceID: 'b',
    });
    const payload = parseHealthPayload(
      [entry('a'), inMaintenance],
      'consul health/service/payments',
      {},
      'payments',
    );
    expect(payload.endpoints.map((e) => e.id)).toEqual(['a']);
  });
});

import { MeshError } from '@proxyless/core';
import { seededRandom } from '@proxyless/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEtcdResolver, type EtcdResolver } from '../../../packages/discovery/src/etcd/index.js';
import { type EtcdServer, etcdBinary, startEtcd } from '../../support/etcd-server.js';
import { record, sameIds, uniqueService } from './helpers.js';

const bin = etcdBinary();
const PREFIX = '/proxyless/services/';

interface BadCase {
  name: string;
  /** The bad value written under key `bad`. */
  value: string;
  /** The field path after the key (`''` for the key itself). */
  field: string;
  /** Text the error message must contain besides key and field (usually the value). */
  mentions: string;
  /** Extra keys written first (for cases that need them). */
  extra?: Record<string, string>;
}

const ok = (o: Record<string, unknown>) => JSON.stringify({ address: '10.0.0.1', port: 8080, ...o });

const CASES: BadCase[] = [
  {
    name: 'invalid JSON',
    value: '{"address": "10.0.0.1", "port": 80',
    field: '',
    mentions: '{\\"address\\"',
  },
  { name: 'empty value', value: '', field: '', mentions: 'JSON' },
  { name: 'a JSON array instead of an object', value: '[1,2]', field: '', mentions: '[1,2]' },
  { name: 'a JSON string instead of an object', value: '"10.0.0.1:80"', field: '', mentions: '10.0.0.1:80' },
  { name: 'JSON null', value: 'null', field: '', mentions: 'null' },
  {
    name: 'missing address',
    value: JSON.stringify({ port: 8080 }),
    field: '.address',
    mentions: 'undefined',
  },
  {
    name: 'address not a host',
    value: ok({ address: 'not a host!' }),
    field: '.address',
    mentions: 'not a host!',
  },
  { name: 'address of the wrong type', value: ok({ address: 10 }), field: '.address', mentions: '10' },
  {
    name: 'missing port',
    value: JSON.stringify({ address: '10.0.0.1' }),
    field: '.port',
    mentions: 'undefined',
  },
  { name: 'port as a string', value: ok({ port: '8080' }), field: '.port', mentions: '"8080"' },
  { name: 'port out of range', value: ok({ port: 70000 }), field: '.port', mentions: '70000' },
  { name: 'port zero', value: ok({ port: 0 }), field: '.port', mentions: '0' },
  { name: 'fractional port', value: ok({ port: 80.5 }), field: '.port', mentions: '80.5' },
  { name: 'negative weight', value: ok({ weight: -1 }), field: '.weight', mentions: '-1' },
  { name: 'tags with a number', value: ok({ tags: ['a', 1] }), field: '.tags[1]', mentions: '1' },
  {
    name: 'metadata with a non-string value',
    value: ok({ metadata: { team: 7 } }),
    field: '.metadata.team',
    mentions: '7',
  },
  { name: 'unknown health', value: ok({ health: 'sick' }), field: '.health', mentions: '"sick"' },
  { name: 'misspelt field', value: ok({ prot: 1 }), field: '.prot', mentions: 'did you mean' },
  {
    name: 'oversized value',
    value: ok({ metadata: { blob: 'x'.repeat(70_000) } }),
    field: '',
    mentions: 'bytes',
  },
  {
    name: 'duplicate endpoint id',
    value: ok({ id: 'same' }),
    field: '.id',
    mentions: '"same"',
    extra: { other: ok({ id: 'same', port: 9090 }) },
  },
];

describe.skipIf(!bin.available)(`etcd malformed values against a real etcd ${bin.skipReason}`, () => {
  let etcd: EtcdServer;
  let resolver: EtcdResolver;

  beforeAll(async () => {
    etcd = await startEtcd();
    resolver = createEtcdResolver({
      endpoints: [etcd.endpoint],
      backoff: { baseMs: 20, capMs: 200 },
      random: seededRandom(3),
    });
  });
  afterAll(async () => {
    await resolver?.close();
    await etcd?.stop();
  });

  it.each(CASES)('rejects the whole update for $name, naming key and field', async (c) => {
    const svc = uniqueService('bad');
    await etcd.put(`${PREFIX}${svc}/good`, ok({}));
    for (const [id, v] of Object.entries(c.extra ?? {})) await etcd.put(`${PREFIX}${svc}/${id}`, v);
    const key = `${PREFIX}${svc}/bad`;
    await etcd.put(key, c.value);
    const rec = record(resolver, svc);
    const u = await rec.until((x) => x.kind === 'error', 'a rejected update');
    if (u.kind !== 'error') throw new Error('unreachable');
    expect(MeshError.is(u.error, 'MESH_REGISTRY_PAYLOAD_INVALID')).toBe(true);
    expect(u.lastGood).toBeUndefined();
    const field =
      c.name === 'duplicate endpoint id'
        ? expect.stringMatching(new RegExp(`^${PREFIX}${svc}/(bad|other)\\.id$`))
        : `${key}${c.field}`;
    expect(u.error.details.issues).toEqual(expect.arrayContaining([expect.objectContaining({ field })]));
    if (c.name !== 'duplicate endpoint id') expect(u.error.message).toContain(`${key}${c.field}:`);
    expect(u.error.message).toContain(c.mentions);
    expect(u.error.details.service).toBe(svc);
    // Nothing half-applied: the valid key was never delivered on its own.
    expect(rec.updates.some((x) => x.kind === 'endpoints')).toBe(false);
    rec.dispose();
  });

  it('keeps the last good set (stale) when a bad value arrives through the watch, and applies the fix', async () => {
    const svc = uniqueService('watch-bad');
    await etcd.put(`${PREFIX}${svc}/a`, ok({ port: 1001 }));
    const rec = record(resolver, svc);
    await rec.until((u) => sameIds(u, ['a']), 'a');
    // One good change and one bad value: neither is applied while the bad one is there.
    await etcd.put(`${PREFIX}${svc}/b`, ok({ port: 1002 }));
    await rec.until((u) => sameIds(u, ['a', 'b']), 'a, b');
    await etcd.put(`${PREFIX}${svc}/c`, ok({ port: 'eighty' }));
    const bad = await rec.until((u) => u.kind === 'error', 'the rejected update');
    if (bad.kind !== 'error') throw new Error('unreachable');
    expect(bad.error.code).toBe('MESH_REGISTRY_PAYLOAD_INVALID');
    expect(bad.error.message).toContain(`${PREFIX}${svc}/c.port`);
    expect(bad.error.message).toContain('"eighty"');
    expect(bad.lastGood?.stale).toBe(true);
    expect(bad.lastGood?.endpoints.map((e) => e.id).sort()).toEqual(['a', 'b']);
    await etcd.del(`${PREFIX}${svc}/a`);
    const still = await rec.until(
      (u) => u.kind === 'error' && u !== bad,
      'a second rejection (a removed while c is bad)',
    );
    expect(still.kind === 'error' && still.lastGood?.endpoints.map((e) => e.id).sort()).toEqual(['a', 'b']);
    await etcd.put(`${PREFIX}${svc}/c`, ok({ port: 1003 }));
    const fixed = await rec.until((u) => u.kind === 'endpoints', 'the fixed set');
    expect(sameIds(fixed, ['b', 'c'])).toBe(true);
    expect(fixed.kind === 'endpoints' && fixed.set.stale).toBe(false);
    rec.dispose();
  });

  it('reports every bad key of a listing at once', async () => {
    const svc = uniqueService('many-bad');
    await etcd.put(`${PREFIX}${svc}/x`, ok({ port: -1 }));
    await etcd.put(`${PREFIX}${svc}/y`, ok({ weight: 'heavy' }));
    const rec = record(resolver, svc);
    const u = await rec.until((x) => x.kind === 'error', 'a rejected update');
    if (u.kind !== 'error') throw new Error('unreachable');
    const fields = (u.error.details.issues ?? []).map((i) => i.field).sort();
    expect(fields).toEqual([`${PREFIX}${svc}/x.port`, `${PREFIX}${svc}/y.weight`]);
    rec.dispose();
  });
});

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEndpoint, MeshError, type ResolverUpdate } from '@proxyless/core';
import { flushPromises, VirtualClock } from '@proxyless/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { createEnvResolver } from './env-resolver.js';
import { createFileResolver } from './file-resolver.js';
import { ResolverHub, type WatchSink } from './hub.js';
import { createStaticResolver } from './static.js';

function collect(): { updates: ResolverUpdate[]; listener: (u: ResolverUpdate) => void } {
  const updates: ResolverUpdate[] = [];
  return { updates, listener: (u) => updates.push(u) };
}

describe('ResolverHub', () => {
  it('shares one upstream watch per service and stops it with the last watcher', async () => {
    let starts = 0;
    let stops = 0;
    const hub = new ResolverHub({
      name: 't',
      clock: new VirtualClock(),
      start: (_s, sink) => {
        starts++;
        sink.endpoints([createEndpoint({ address: '10.0.0.1', port: 80 })]);
        return () => stops++;
      },
    });
    const a = collect();
    const b = collect();
    const wa = hub.watch('api', a.listener);
    const wb = hub.watch('api', b.listener);
    expect(a.updates).toHaveLength(0); // never synchronous
    await flushPromises();
    expect(starts).toBe(1);
    expect(a.updates).toHaveLength(1);
    expect(b.updates).toHaveLength(1);
    wa.dispose();
    expect(stops).toBe(0);
    wb.dispose();
    expect(stops).toBe(1);
  });

  it('keeps the last good set marked stale on failure, applies an empty healthy answer', async () => {
    const clock = new VirtualClock();
    let sink: WatchSink | undefined;
    const hub = new ResolverHub({
      name: 't',
      clock,
      start: (_s, k) => {
        sink = k;
        return () => undefined;
      },
    });
    const c = collect();
    hub.watch('api', c.listener);
    sink!.endpoints([createEndpoint({ address: '10.0.0.1', port: 80 })]);
    await flushPromises();
    await clock.advance(1000);
    sink!.error(new MeshError('MESH_REGISTRY_UNAVAILABLE', 'down'));
    await flushPromises();
    const err = c.updates[1]!;
    expect(err.kind).toBe('error');
    if (err.kind !== 'error') throw new Error('unreachable');
    expect(err.lastGood?.endpoints).toHaveLength(1);
    expect(err.lastGood?.stale).toBe(true);
    expect(err.lastGood?.staleSince).toBe(1000);
    sink!.endpoints([]);
    await flushPromises();
    const last = c.updates[2]!;
    expect(last.kind === 'endpoints' && last.set.endpoints.length === 0 && !last.set.stale).toBe(true);
    expect(last.kind === 'endpoints' && last.set.version).toBe(2);
  });

  it('does not wake watchers when an answer repeats, and replays state to late watchers', async () => {
    let sink: WatchSink | undefined;
    const hub = new ResolverHub({
      name: 't',
      clock: new VirtualClock(),
      start: (_s, k) => {
        sink = k;
        return () => undefined;
      },
    });
    const a = collect();
    hub.watch('api', a.listener);
    const eps = [createEndpoint({ address: '10.0.0.1', port: 80 })];
    sink!.endpoints(eps);
    await flushPromises();
    sink!.endpoints([createEndpoint({ address: '10.0.0.1', port: 80 })]);
    await flushPromises();
    expect(a.updates).toHaveLength(1);
    const late = collect();
    hub.watch('api', late.listener);
    await flushPromises();
    expect(late.updates).toHaveLength(1);
  });
});

describe('static and env resolvers', () => {
  it('parses host:port lists with weights and bracketed IPv6', async () => {
    const r = createStaticResolver({ services: { api: '10.0.0.1:80=3,[::1]:8080' } });
    expect(r.match('api')).toBe('api');
    expect(r.match('other')).toBeUndefined();
    const c = collect();
    r.watch('api', c.listener);
    await flushPromises();
    const u = c.updates[0]!;
    expect(u.kind === 'endpoints' && u.set.endpoints.map((e) => [e.address, e.port, e.weight])).toEqual([
      ['10.0.0.1', 80, 3],
      ['::1', 8080, 1],
    ]);
    await r.close();
  });

  it('maps host names to MESH_ENDPOINTS_ suffixes', () => {
    const r = createEnvResolver({ env: { MESH_ENDPOINTS_PAYMENTS_V2_EU: '127.0.0.1:9000' } });
    expect(r.match('payments-v2.eu')).toBe('payments-v2.eu');
    expect(r.match('payments')).toBeUndefined();
  });

  it.each([
    ['10.0.0.1', 'MESH_ENDPOINTS_API'],
    ['10.0.0.1:99999', 'MESH_ENDPOINTS_API'],
    ['10.0.0.1:80=x', 'MESH_ENDPOINTS_API'],
    ['10.0.0.1:80=-2', 'MESH_ENDPOINTS_API'],
    ['10.0.0.1:80,', 'MESH_ENDPOINTS_API'],
  ])('rejects %j naming %s', (value, name) => {
    expect(() => createEnvResolver({ env: { [name]: value } })).toThrow(
      expect.objectContaining({ code: 'MESH_CONFIG_INVALID', message: expect.stringContaining(value) }),
    );
  });

  // `http://localhost/`, `http://123/` (0.0.0.123) and `http://0x1f/` never reach a service: the
  // resolver alone refuses them as the mesh does, so such a variable is never silently dead.
  it.each([
    ['MESH_ENDPOINTS_LOCALHOST', 'localhost', /localhost` names are never services/],
    ['MESH_ENDPOINTS_123', '123', /last label is a number/],
    ['MESH_ENDPOINTS_0X1F', '0x1f', /last label is a number/],
  ])('rejects %s, a service no request can reach', (name, service, why) => {
    let caught: unknown;
    try {
      createEnvResolver({ env: { [name]: '127.0.0.1:9000' } });
    } catch (error) {
      caught = error;
    }
    expect(MeshError.is(caught, 'MESH_CONFIG_INVALID')).toBe(true);
    expect((caught as MeshError).details.issues).toEqual([
      { field: name, expected: expect.stringMatching(why), value: service },
    ]);
  });

  it('keeps a service with _ inside its suffix (MESH_ENDPOINTS_A__B: a--b); a stray _ at either end is an error', () => {
    const r = createEnvResolver({ env: { MESH_ENDPOINTS_A__B: '127.0.0.1:9000' } });
    expect(r.match('a--b')).toBe('a--b');
    expect(() => createEnvResolver({ env: { MESH_ENDPOINTS_A_: '127.0.0.1:9000' } })).toThrow(
      'MESH_ENDPOINTS_A_: expected a variable name MESH_ENDPOINTS_<SERVICE> whose service name starts and ends with a letter or digit (did you mean "MESH_ENDPOINTS_A"?)',
    );
  });

  it('keeps a service whose name only ends in localhost (MESH_ENDPOINTS_FOO_LOCALHOST: foo_localhost)', () => {
    const r = createEnvResolver({ env: { MESH_ENDPOINTS_FOO_LOCALHOST: '127.0.0.1:9000' } });
    expect(r.match('foo_localhost')).toBe('foo_localhost');
  });

  it('rejects a duplicate endpoint', () => {
    expect(() => createStaticResolver({ services: { api: '10.0.0.1:80,10.0.0.1:80' } })).toThrow(
      /listed twice/,
    );
  });
});

describe('file resolver validation', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function write(doc: unknown): string {
    dir = mkdtempSync(join(tmpdir(), 'proxyless-file-'));
    const path = join(dir, 'mesh.json');
    writeFileSync(path, typeof doc === 'string' ? doc : JSON.stringify(doc));
    return path;
  }

  it.each<[string, unknown, RegExp]>([
    ['invalid JSON', '{"services": {', /not valid JSON/],
    ['services not an object', { services: [] }, /services: expected an object/],
    [
      'endpoint port out of range',
      { services: { api: { endpoints: [{ address: '10.0.0.1', port: 70000 }] } } },
      /services\.api\.endpoints\[0\]\.port/,
    ],
    [
      'endpoint address missing',
      { services: { api: { endpoints: [{ port: 80 }] } } },
      /services\.api\.endpoints\[0\]\.address/,
    ],
    [
      'negative weight',
      { services: { api: { endpoints: [{ address: 'a', port: 80, weight: -1 }] } } },
      /weight/,
    ],
    [
      'tags not strings',
      { services: { api: { endpoints: [{ address: 'a', port: 80, tags: [1] }] } } },
      /tags\[0\]/,
    ],
    [
      'metadata not strings',
      { services: { api: { endpoints: [{ address: 'a', port: 80, metadata: { x: 1 } }] } } },
      /metadata\.x/,
    ],
    [
      'unknown endpoint key',
      { services: { api: { endpoints: [{ address: 'a', port: 80, wieght: 2 }] } } },
      /wieght[\s\S]*did you mean "weight"/,
    ],
    ['unknown top-level key', { servces: {} }, /servces[\s\S]*did you mean "services"/],
    ['bad service name', { services: { 'a b': { endpoints: [] } } }, /services\.a b/],
  ])('rejects %s', (_name, doc, pattern) => {
    const path = write(doc);
    expect(() => createFileResolver({ path })).toThrow(pattern);
  });

  it('rejects a missing file naming MESH_CONFIG_FILE', () => {
    dir = mkdtempSync(join(tmpdir(), 'proxyless-file-'));
    expect(() => createFileResolver({ path: join(dir, 'nope.json') })).toThrow(
      /MESH_CONFIG_FILE[\s\S]*nope\.json/,
    );
  });

  it('keeps the last good document when a new version is invalid, then applies the next valid one', async () => {
    const clock = new VirtualClock();
    const path = write({ services: { api: { endpoints: '10.0.0.1:80' } } });
    const r = createFileResolver({ path, clock });
    const rejected: MeshError[] = [];
    r.onRejected((e) => rejected.push(e));
    const c = collect();
    r.watch('api', c.listener);
    await flushPromises();
    writeFileSync(path, '{"services": {"api": {"endpoints": "10.0.0.1:80,10.0.0.2:');
    await r.reload();
    await flushPromises();
    expect(rejected).toHaveLength(1);
    const u = c.updates.at(-1)!;
    expect(u.kind === 'error' && u.lastGood?.endpoints.length).toBe(1);
    writeFileSync(path, JSON.stringify({ services: { api: { endpoints: '10.0.0.1:80,10.0.0.2:80' } } }));
    await r.reload();
    await flushPromises();
    const v = c.updates.at(-1)!;
    expect(v.kind === 'endpoints' && v.set.endpoints.length).toBe(2);
    await r.close();
  });
});

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshError, seededRandom } from '@proxyless/core';
import { describe, expect, it, vi } from 'vitest';
import { consulRetryDelay, parseRetryAfter } from './backoff.js';
import { consulEnvVars, consulOptionsFromEnv } from './env.js';
import { parseConsulAddress } from './http.js';
import { LongPollSlots, longPollSlots, releaseLongPollSlots } from './long-polls.js';
import { parseHealthPayload } from './payload.js';
import { consulServiceDefinition } from './registrar.js';
import { createConsulResolver, parseIndex } from './resolver.js';

const dir = mkdtempSync(join(tmpdir(), 'proxyless-consul-'));
const tokenFile = join(dir, 'token');
writeFileSync(tokenFile, '  secret-from-file\n');
const pem = join(dir, 'ca.pem');
writeFileSync(pem, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
const emptyTokenFile = join(dir, 'empty-token');
writeFileSync(emptyTokenFile, ' \n');
const caDir = join(dir, 'cas');
mkdirSync(caDir);
writeFileSync(join(caDir, 'a.pem'), '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');

function fields(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    return ((error as MeshError).details.issues ?? []).map((i) => i.field);
  }
  throw new Error('expected a MESH_CONFIG_INVALID error');
}

describe('consulOptionsFromEnv', () => {
  it('is undefined without CONSUL_HTTP_ADDR or MESH_REGISTRY=consul', () => {
    expect(consulOptionsFromEnv({})).toBeUndefined();
    expect(consulOptionsFromEnv({ MESH_REGISTRY: 'etcd' })).toBeUndefined();
  });

  it('defaults the address with MESH_REGISTRY=consul', () => {
    expect(consulOptionsFromEnv({ MESH_REGISTRY: 'consul' })).toEqual({ address: '127.0.0.1:8500' });
  });

  it('reads every variable', () => {
    const o = consulOptionsFromEnv({
      CONSUL_HTTP_ADDR: 'consul.internal:8501',
      CONSUL_HTTP_SSL: 'true',
      CONSUL_HTTP_TOKEN: 'ignored-because-file-wins',
      CONSUL_HTTP_TOKEN_FILE: tokenFile,
      CONSUL_HTTP_AUTH: 'ops:pa:ss',
      CONSUL_CACERT: pem,
      CONSUL_CAPATH: caDir,
      CONSUL_CLIENT_CERT: pem,
      CONSUL_CLIENT_KEY: pem,
      CONSUL_TLS_SERVER_NAME: 'consul.internal:8501',
      CONSUL_NAMESPACE: 'team-a',
      CONSUL_PARTITION: 'part-1',
      MESH_CONSUL_DATACENTER: 'dc2',
      MESH_CONSUL_ONLY_PASSING: 'yes',
      MESH_CONSUL_TAG: 'canary',
      MESH_CONSUL_ZONE_KEY: 'az',
    });
    expect(o).toEqual({
      address: 'consul.internal:8501',
      https: true,
      token: 'secret-from-file',
      basicAuth: { username: 'ops', password: 'pa:ss' },
      tls: { caFile: pem, caPath: caDir, certFile: pem, keyFile: pem, serverName: 'consul.internal' },
      namespace: 'team-a',
      partition: 'part-1',
      datacenter: 'dc2',
      onlyPassing: true,
      tag: 'canary',
      zoneMetaKey: 'az',
    });
  });

  it('takes CONSUL_HTTP_TOKEN when there is no token file', () => {
    expect(
      consulOptionsFromEnv({ CONSUL_HTTP_ADDR: 'unix:///run/consul.sock', CONSUL_HTTP_TOKEN: 't' }),
    ).toEqual({
      address: 'unix:///run/consul.sock',
      token: 't',
    });
  });

  it.each(['1', 't', 'T', 'TRUE', 'true', 'True'])(
    'reads CONSUL_HTTP_SSL=%s as strconv.ParseBool does (#12)',
    (value) => {
      expect(consulOptionsFromEnv({ CONSUL_HTTP_ADDR: 'c:8501', CONSUL_HTTP_SSL: value })?.https).toBe(true);
    },
  );

  it.each(['0', 'f', 'F', 'FALSE', 'false', 'False'])(
    'reads CONSUL_HTTP_SSL_VERIFY=%s as false (#12)',
    (v) => {
      expect(consulOptionsFromEnv({ CONSUL_HTTP_ADDR: 'c:8501', CONSUL_HTTP_SSL_VERIFY: v })?.tls).toEqual({
        verify: false,
      });
    },
  );

  it.each([
    ['CONSUL_HTTP_SSL', 'yes'],
    ['CONSUL_HTTP_SSL', 'on'],
    ['CONSUL_HTTP_SSL_VERIFY', 'no'],
    ['CONSUL_HTTP_SSL_VERIFY', 'off'],
  ])(
    'refuses %s=%s, a word strconv.ParseBool does not read (the consul CLI would ignore it)',
    (name, value) => {
      let error: unknown;
      try {
        consulOptionsFromEnv({ CONSUL_HTTP_ADDR: 'c:8501', [name]: value });
      } catch (e) {
        error = e;
      }
      expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
      expect((error as MeshError).details.issues).toEqual([
        { field: name, expected: expect.stringContaining('strconv.ParseBool'), value },
      ]);
    },
  );

  it('an empty token file leaves CONSUL_HTTP_TOKEN (or no token), as the Go client (#12)', () => {
    expect(
      consulOptionsFromEnv({
        CONSUL_HTTP_ADDR: 'c:8500',
        CONSUL_HTTP_TOKEN: 'from-env',
        CONSUL_HTTP_TOKEN_FILE: emptyTokenFile,
      })?.token,
    ).toBe('from-env');
    expect(
      consulOptionsFromEnv({ CONSUL_HTTP_ADDR: 'c:8500', CONSUL_HTTP_TOKEN_FILE: emptyTokenFile }),
    ).toEqual({ address: 'c:8500' });
  });

  it('CONSUL_HTTP_AUTH: user alone, or user:password split at the first colon (#12)', () => {
    expect(consulOptionsFromEnv({ CONSUL_HTTP_ADDR: 'c:8500', CONSUL_HTTP_AUTH: 'ops' })?.basicAuth).toEqual({
      username: 'ops',
    });
    expect(
      consulOptionsFromEnv({ CONSUL_HTTP_ADDR: 'c:8500', CONSUL_HTTP_AUTH: 'ops:a:b' })?.basicAuth,
    ).toEqual({ username: 'ops', password: 'a:b' });
  });

  it('CONSUL_CAPATH must be a directory (#12)', () => {
    expect(fields(() => consulOptionsFromEnv({ CONSUL_HTTP_ADDR: 'c:1', CONSUL_CAPATH: pem }))).toEqual([
      'CONSUL_CAPATH',
    ]);
    expect(() => createConsulResolver({ tls: { caPath: dir } })).toThrow(/tls\.caPath/);
  });

  it('lists every bad variable by name and value at once', () => {
    const env = {
      CONSUL_HTTP_ADDR: 'ftp://consul:21',
      CONSUL_HTTP_SSL: 'maybe',
      CONSUL_HTTP_TOKEN_FILE: join(dir, 'missing-token'),
      CONSUL_CACERT: join(dir, 'missing.pem'),
      CONSUL_CLIENT_CERT: pem,
      CONSUL_TLS_SERVER_NAME: 'bad name',
      CONSUL_NAMESPACE: 'a/b',
      CONSUL_PARTITION: 'x y',
      MESH_CONSUL_DATACENTER: 'dc 1',
      MESH_CONSUL_ONLY_PASSING: 'sometimes',
      MESH_CONSUL_TAG: 'a,b',
      MESH_CONSUL_ZONE_KEY: 'zone key',
    };
    let err: MeshError | undefined;
    try {
      consulOptionsFromEnv(env);
    } catch (e) {
      err = e as MeshError;
    }
    expect(err?.code).toBe('MESH_CONFIG_INVALID');
    const names = (err?.details.issues ?? []).map((i) => i.field).sort();
    expect(names).toEqual(
      [
        'CONSUL_CACERT',
        'CONSUL_CLIENT_KEY',
        'CONSUL_HTTP_ADDR',
        'CONSUL_HTTP_SSL',
        'CONSUL_HTTP_TOKEN_FILE',
        'CONSUL_NAMESPACE',
        'CONSUL_PARTITION',
        'CONSUL_TLS_SERVER_NAME',
        'MESH_CONSUL_DATACENTER',
        'MESH_CONSUL_ONLY_PASSING',
        'MESH_CONSUL_TAG',
        'MESH_CONSUL_ZONE_KEY',
      ].sort(),
    );
    for (const v of ['maybe', 'sometimes', 'a,b', 'dc 1', 'zone key', 'a/b'])
      expect(err?.message).toContain(v);
  });

  it.each([
    ['CONSUL_HTTP_ADDR', 'http://'],
    ['CONSUL_HTTP_ADDR', 'unix://relative.sock'],
    ['CONSUL_HTTP_ADDR', 'http://user:pw@consul:8500'],
    ['CONSUL_HTTP_SSL', '2'],
    ['CONSUL_HTTP_SSL_VERIFY', 'nope'],
    ['MESH_CONSUL_ONLY_PASSING', 'passing'],
  ])('rejects %s=%s', (name, value) => {
    expect(fields(() => consulOptionsFromEnv({ CONSUL_HTTP_ADDR: '127.0.0.1:8500', [name]: value }))).toEqual(
      [name],
    );
  });

  it('rejects a client key without certificate', () => {
    expect(fields(() => consulOptionsFromEnv({ MESH_REGISTRY: 'consul', CONSUL_CLIENT_KEY: pem }))).toEqual([
      'CONSUL_CLIENT_CERT',
    ]);
  });

  it('documents every variable it reads', () => {
    const names = consulEnvVars.map((v) => v.name);
    for (const n of [
      'CONSUL_HTTP_ADDR',
      'CONSUL_HTTP_TOKEN',
      'CONSUL_HTTP_TOKEN_FILE',
      'MESH_CONSUL_ZONE_KEY',
    ])
      expect(names).toContain(n);
    for (const v of consulEnvVars) expect(v.description.length).toBeGreaterThan(10);
  });
});

describe('consulRetryDelay (#12)', () => {
  it('stays in [d/2, d) with d = min(cap, base·2ⁿ); the throttled base after 429/503', () => {
    const random = seededRandom(42);
    const o = { baseMs: 1_000, capMs: 60_000, throttledBaseMs: 5_000 };
    for (let n = 0; n < 12; n++) {
      for (const throttled of [false, true]) {
        const d = Math.min(60_000, (throttled ? 5_000 : 1_000) * 2 ** n);
        for (let i = 0; i < 200; i++) {
          const delay = consulRetryDelay(n, o, random, throttled);
          expect(delay).toBeGreaterThanOrEqual(d / 2);
          expect(delay).toBeLessThan(d);
        }
      }
    }
  });

  it('parses Retry-After seconds and HTTP dates, bounded to 10 minutes', () => {
    expect(parseRetryAfter('7', 0)).toBe(7_000);
    expect(parseRetryAfter('Thu, 01 Jan 1970 00:00:30 GMT', 10_000)).toBe(20_000);
    expect(parseRetryAfter('99999', 0)).toBe(600_000);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
    expect(parseRetryAfter(undefined, 0)).toBeUndefined();
  });
});

describe('LongPollSlots (#12)', () => {
  it('grants slots in order up to the cap, shortens the wait beyond it, and reports crossing once', async () => {
    const slots = new LongPollSlots();
    slots.addUser(2);
    const events: unknown[] = [];
    const ws = Array.from({ length: 4 }, () => slots.join((e) => events.push(e)));
    expect(events).toEqual([{ type: 'long-poll-limit', watches: 3, limit: 2 }]);
    expect(ws[0]?.waitMs(60_000)).toBe(30_000);
    const signal = new AbortController().signal;
    const r1 = await ws[0]?.acquire(signal);
    const r2 = await ws[1]?.acquire(signal);
    const order: number[] = [];
    const p3 = ws[2]?.acquire(signal).then((r) => {
      order.push(3);
      return r;
    });
    const p4 = ws[3]?.acquire(signal).then((r) => {
      order.push(4);
      return r;
    });
    expect(slots.active).toBe(2);
    r1?.();
    (await p3)?.();
    r2?.();
    (await p4)?.();
    expect(order).toEqual([3, 4]);
    expect(slots.active).toBe(0);
    for (const w of ws) w.leave();
    expect(ws[0]?.waitMs(60_000)).toBe(60_000);
  });

  it('an aborted wait leaves the queue', async () => {
    const slots = new LongPollSlots();
    slots.addUser(1);
    const w = slots.join(() => undefined);
    const held = await w.acquire(new AbortController().signal);
    const ac = new AbortController();
    const queued = w.acquire(ac.signal);
    ac.abort();
    expect(await queued).toBeUndefined();
    held?.();
    expect(slots.active).toBe(0);
  });
});

describe('parseConsulAddress', () => {
  it.each([
    ['127.0.0.1:8500', false, 'http://127.0.0.1:8500', ''],
    ['consul', false, 'http://consul:8500', ''],
    ['http://consul:8500/prefix/', false, 'http://consul:8500', '/prefix'],
    ['https://consul', false, 'https://consul:443', ''],
    ['http://consul:8500', true, 'https://consul:8500', ''],
    ['[::1]:8500', false, 'http://[::1]:8500', ''],
  ])('%s (ssl %s)', (addr, ssl, origin, prefix) => {
    expect(parseConsulAddress(addr, ssl)).toMatchObject({ origin, prefix });
  });

  it('unix sockets use Host localhost', () => {
    expect(parseConsulAddress('unix:///var/run/consul.sock')).toEqual({
      origin: 'http://localhost',
      prefix: '',
      https: false,
      socketPath: '/var/run/consul.sock',
    });
  });

  it('never quotes a password given in the address back (as MESH_ETCD_ENDPOINTS does not)', () => {
    for (const addr of ['http://admin:S3CRET-3@127.0.0.1:8500', 'tcp://admin:S3CRET-3@x:1']) {
      let error: unknown;
      try {
        parseConsulAddress(addr, false, 'CONSUL_HTTP_ADDR');
      } catch (e) {
        error = e;
      }
      expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
      const all = `${(error as Error).message}${JSON.stringify((error as MeshError).details)}`;
      expect(all).toContain('admin:***@');
      expect(all).not.toContain('S3CRET');
    }
  });

  it('rejects unknown schemes as the Go client does', () => {
    expect(() => parseConsulAddress('tcp://x:1', false, 'CONSUL_HTTP_ADDR')).toThrow(
      /Unknown protocol scheme: tcp/,
    );
  });
});

describe('resolver basics', () => {
  it('match(): service DNS names, configured dc, bare names', async () => {
    const r = createConsulResolver({ datacenter: 'dc2' });
    expect(r.match('payments.service.consul')).toBe('payments');
    expect(r.match('payments.service.consul.')).toBe('payments');
    expect(r.match('payments.service.dc2.consul')).toBe('payments');
    expect(r.match('payments.service.dc9.consul')).toBeUndefined();
    expect(r.match('payments')).toBe('payments');
    expect(r.match('payments.example.com')).toBeUndefined();
    // Consul's DNS form for tags: the instances of payments tagged v1.
    expect(r.match('v1.payments.service.consul')).toBe('v1.payments');
    expect(r.match('v1.payments.service.dc9.consul')).toBeUndefined();
    expect(r.match('payments.node.consul')).toBeUndefined();
    await r.close();
    const strict = createConsulResolver({ matchBareNames: false, domain: 'mesh.internal' });
    expect(strict.match('payments')).toBeUndefined();
    expect(strict.match('payments.service.mesh.internal')).toBe('payments');
    expect(strict.match('payments.service.consul')).toBeUndefined();
    await strict.close();
  });

  it('rejects bad options', () => {
    expect(() => createConsulResolver({ waitMs: 20 * 60_000 })).toThrow(/waitMs/);
    expect(() => createConsulResolver({ backoff: { baseMs: 0, capMs: 1 } })).toThrow(/backoff/);
    expect(() => createConsulResolver({ maxLongPolls: 200 })).toThrow(/maxLongPolls/);
    expect(() => createConsulResolver({ address: 'gopher://x' })).toThrow(/Unknown protocol scheme/);
  });

  it('parseIndex: only positive integers', () => {
    expect(parseIndex('42')).toBe(42);
    for (const v of [undefined, '', '0', '-1', 'abc', '1.5', '99999999999999999999'])
      expect(parseIndex(v)).toBeUndefined();
  });

  it('close() is idempotent', async () => {
    const r = createConsulResolver();
    const a = r.close();
    expect(r.close()).toBe(a);
    await a;
  });
});

describe('parseHealthPayload', () => {
  const entry = (
    id: string,
    o: {
      node?: string;
      nodeAddr?: string;
      addr?: string;
      port?: number;
      checks?: string[];
      checkIds?: string[];
      meta?: Record<string, string>;
      nodeMeta?: Record<string, string>;
    } = {},
  ) => ({
    Node: { Node: o.node ?? 'n1', Address: o.nodeAddr ?? '10.0.0.1', Meta: o.nodeMeta ?? {} },
    Service: {
      ID: id,
      Service: 's',
      Address: o.addr ?? '',
      ...(o.port === 0 ? {} : { Port: o.port ?? 80 }),
      Tags: [],
      Meta: o.meta ?? {},
      Weights: { Passing: 3, Warning: 0 },
    },
    Checks: (o.checks ?? ['passing']).map((s, i) => ({ CheckID: o.checkIds?.[i] ?? `c${i}`, Status: s })),
  });

  it('qualifies duplicate service IDs with the node name', () => {
    const p = parseHealthPayload([entry('a', { node: 'n1' }), entry('a', { node: 'n2' })], 'x');
    expect(p.endpoints.map((e) => e.id)).toEqual(['a@n1', 'a@n2']);
  });

  it('skips critical, maintenance, port-less and weight-0 warning instances', () => {
    const p = parseHealthPayload(
      [
        entry('ok'),
        entry('crit', { checks: ['passing', 'critical'] }),
        entry('maint', { checks: ['passing', 'critical'], checkIds: ['serfHealth', '_node_maintenance'] }),
        entry('noport', { port: 0 }),
        entry('warn0', { checks: ['warning'] }),
      ],
      'x',
    );
    expect(p.endpoints.map((e) => e.id)).toEqual(['ok']);
    expect(p.skipped.map((s) => s.id)).toEqual(['crit', 'maint', 'noport', 'warn0']);
  });

  it('zone: service meta wins over node meta; IPv6 brackets are stripped', () => {
    const p = parseHealthPayload(
      [
        entry('a', { meta: { az: 'svc-zone' }, nodeMeta: { az: 'node-zone' } }),
        entry('b', { nodeMeta: { az: 'node-zone' }, addr: '[::1]' }),
      ],
      'x',
      { zoneMetaKey: 'az' },
    );
    expect(p.endpoints.map((e) => [e.zone, e.address])).toEqual([
      ['svc-zone', '10.0.0.1'],
      ['node-zone', '::1'],
    ]);
  });

  it('names every bad field of a payload at once', () => {
    try {
      parseHealthPayload(
        [{ Node: { Node: 'n', Address: 1 }, Service: { ID: 'a', Service: 's', Port: 'x' }, Checks: [] }],
        'x',
      );
      expect.unreachable();
    } catch (error) {
      expect(MeshError.is(error, 'MESH_REGISTRY_PAYLOAD_INVALID')).toBe(true);
      expect((error as MeshError).details.issues?.map((i) => i.field)).toEqual([
        '[0].Node.Address',
        '[0].Service.Port',
      ]);
    }
  });
});

describe('consulServiceDefinition', () => {
  it('sends Weights, Meta with the zone and Go duration strings', () => {
    expect(
      consulServiceDefinition(
        {
          service: 'p',
          address: '10.0.0.1',
          port: 80,
          zone: 'z1',
          weights: { passing: 5, warning: 1 },
          check: {
            kind: 'http',
            url: 'http://10.0.0.1/healthz',
            intervalMs: 10_000,
            timeoutMs: 2_000,
            deregisterAfterMs: 60_000,
          },
        },
        'p-1',
      ),
    ).toEqual({
      Name: 'p',
      ID: 'p-1',
      Address: '10.0.0.1',
      Port: 80,
      Tags: [],
      Meta: { zone: 'z1' },
      Weights: { Passing: 5, Warning: 1 },
      Check: {
        HTTP: 'http://10.0.0.1/healthz',
        Method: 'GET',
        Interval: '10000ms',
        Timeout: '2000ms',
        DeregisterCriticalServiceAfter: '60000ms',
      },
    });
  });
});

describe('connection options', () => {
  it('a missing TLS file or a lone client cert is a config error naming the field', () => {
    expect(() => createConsulResolver({ tls: { caFile: '/nonexistent/ca.pem' } })).toThrow(
      /tls\.caFile.*ENOENT/,
    );
    expect(() => createConsulResolver({ tls: { cert: 'x' } })).toThrow(
      /tls\.key: both client cert and client key must be provided/,
    );
  });
});

describe('long-poll slots', () => {
  it('are one per agent for the process: another copy of this module (proxyless bundles one) shares them', async () => {
    vi.resetModules();
    const other = await import('./long-polls.js');
    expect(other.longPollSlots).not.toBe(longPollSlots);
    const key = 'http://127.0.0.1:18500/slots-shared';
    const mine = longPollSlots(key, 8);
    try {
      expect(other.longPollSlots(key, 8)).toBe(mine);
      other.releaseLongPollSlots(key, 8);
    } finally {
      releaseLongPollSlots(key, 8);
    }
  });
});

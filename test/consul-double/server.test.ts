/** The double's own conformance to consul-api.md (status codes, texts, defaults, blocking). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConsulDouble, parseGoDuration, startConsulDouble } from './server.js';

let d: ConsulDouble;
beforeAll(async () => {
  d = await startConsulDouble();
});
afterAll(async () => {
  await d.close();
});

const put = (path: string, body?: unknown) =>
  fetch(`${d.url}${path}`, {
    method: 'PUT',
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
const get = (path: string) => fetch(`${d.url}${path}`);
type Entry = {
  Service: { ID: string; Port?: number; Tags: string[] };
  Checks: Array<{ CheckID: string; Status: string; Name: string }>;
};

describe('Consul double: conventions', () => {
  it('unknown path → 404 plain text; wrong method → 405 with Allow', async () => {
    const r = await get('/v1/nope');
    expect(r.status).toBe(404);
    expect(await r.text()).toBe('Invalid URL path: not a recognized HTTP API endpoint\n');
    const m = await fetch(`${d.url}/v1/agent/service/register`, { method: 'POST', body: '{}' });
    expect(m.status).toBe(405);
    expect(m.headers.get('allow')).toBe('OPTIONS,PUT');
    expect(await m.text()).toBe('method POST not allowed');
    expect(r.headers.get('x-consul-default-acl-policy')).toBe('allow');
  });

  it('CE: ns and partition → 400; bad index/wait/passing → 400', async () => {
    expect(await (await get('/v1/health/service/x?ns=default')).text()).toBe(
      'Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature',
    );
    expect((await get('/v1/health/service/x?partition=p')).status).toBe(400);
    expect(await (await get('/v1/health/service/x?index=abc')).text()).toBe('Invalid index');
    expect(await (await get('/v1/health/service/x?index=5&wait=soon')).text()).toBe('Invalid wait time');
    expect(await (await get('/v1/health/service/x?passing=maybe')).text()).toBe('Invalid value for ?passing');
    expect(await (await get('/v1/health/service/')).text()).toBe('Missing service name');
  });

  it('parses Go durations', () => {
    expect(parseGoDuration('10s')).toBe(10_000);
    expect(parseGoDuration('1m30s')).toBe(90_000);
    expect(parseGoDuration('300000ms')).toBe(300_000);
    expect(parseGoDuration('10')).toBeUndefined();
  });
});

describe('Consul double: agent registration', () => {
  it.each([
    ['not JSON', '{', /^Request decode failed: /],
    ['no Name', { ID: 'x' }, /^Missing service name$/],
    ['0.0.0.0', { Name: 'x', Address: '0.0.0.0' }, /^Invalid service address$/],
    [
      'Weights.Passing 0',
      { Name: 'x', Weights: { Passing: 0, Warning: 1 } },
      /^Invalid Weights: Passing must be greater than 0$/,
    ],
    ['no Interval', { Name: 'x', Check: { HTTP: 'http://x' } }, /Interval must be > 0/],
    [
      'Interval and TTL',
      { Name: 'x', Check: { TTL: '1s', Interval: '1s' } },
      /Interval and TTL cannot both be specified/,
    ],
    ['no check type', { Name: 'x', Check: {} }, /TTL must be > 0 for TTL checks/],
    [
      'bad Status',
      { Name: 'x', Check: { TTL: '10s', Status: 'ok' } },
      /Status for checks must 'passing', 'warning', 'critical'/,
    ],
    [
      'Header as string',
      { Name: 'x', Check: { HTTP: 'http://x', Interval: '1s', Header: { A: 'b' } } },
      /^Request decode failed/,
    ],
    ['Meta key consul-', { Name: 'x', Meta: { 'consul-x': '1' } }, /^Invalid Service Meta/],
  ])('400 for %s', async (_t, body, text) => {
    const r = await put('/v1/agent/service/register', body);
    expect(r.status).toBe(400);
    expect(await r.text()).toMatch(text);
  });

  it('answers 200 with an empty body; check defaults; re-registration keeps status', async () => {
    const r = await put('/v1/agent/service/register', {
      Name: 'def',
      Port: 0,
      Checks: [{ TTL: '60s' }, { TTL: '60s', Name: 'second' }],
    });
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('');
    let entries = (await (await get('/v1/health/service/def')).json()) as Entry[];
    expect(entries).toHaveLength(1);
    const e = entries[0];
    expect(e?.Service.ID).toBe('def');
    expect(e?.Service.Port).toBeUndefined();
    expect(e?.Service.Tags).toEqual([]);
    expect(e?.Checks.map((c) => [c.CheckID, c.Status, c.Name])).toEqual([
      ['serfHealth', 'passing', 'Serf Health Status'],
      ['service:def:1', 'critical', "Service 'def' check"],
      ['service:def:2', 'critical', 'second'],
    ]);
    expect((await put('/v1/agent/check/pass/service:def:1')).status).toBe(200);
    await put('/v1/agent/service/register', {
      Name: 'def',
      Checks: [{ TTL: '60s' }, { TTL: '60s', Name: 'second' }],
    });
    entries = (await (await get('/v1/health/service/def')).json()) as Entry[];
    expect(entries[0]?.Checks[1]?.Status).toBe('passing');
    expect((await get('/v1/health/service/def?passing')).status).toBe(200);
    expect(await (await get('/v1/health/service/def?passing')).json()).toEqual([]);
  });

  it('404 for unknown check and service IDs; 500 for a non-TTL check', async () => {
    const r = await put('/v1/agent/check/pass/nope');
    expect(r.status).toBe(404);
    expect(await r.text()).toBe(
      'Unknown check ID "nope". Ensure that the check ID is passed, not the check name.',
    );
    const s = await put('/v1/agent/service/deregister/nope');
    expect(s.status).toBe(404);
    expect(await s.text()).toBe(
      'Unknown service ID "nope". Ensure that the service ID is passed, not the service name.',
    );
    await put('/v1/agent/service/register', {
      Name: 'h',
      Check: { HTTP: 'http://127.0.0.1:1/', Interval: '10s' },
    });
    const h = await put('/v1/agent/check/pass/service:h');
    expect(h.status).toBe(500);
    expect(await h.text()).toBe('CheckID "service:h" does not have associated TTL');
    const u = await fetch(`${d.url}/v1/agent/check/update/service:h`, {
      method: 'PUT',
      body: JSON.stringify({ Status: 'bad' }),
    });
    expect(await u.text()).toBe("Invalid check status: 'bad'");
  });
});

describe('Consul double: blocking queries', () => {
  it('unknown service → [] with an index ≥ 1', async () => {
    const r = await get('/v1/health/service/unknown-svc');
    expect(await r.json()).toEqual([]);
    expect(Number(r.headers.get('x-consul-index'))).toBeGreaterThanOrEqual(1);
  });

  it('times out with 200 and the same index; a write wakes it with a higher index', async () => {
    await put('/v1/agent/service/register', {
      Name: 'blk',
      Port: 1,
      Check: { TTL: '60s', Status: 'passing' },
    });
    const first = await get('/v1/health/service/blk');
    const index = Number(first.headers.get('x-consul-index'));
    const t0 = performance.now();
    const timedOut = await get(`/v1/health/service/blk?index=${index}&wait=150ms`);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    expect(timedOut.status).toBe(200);
    expect(Number(timedOut.headers.get('x-consul-index'))).toBe(index);
    const woken = get(`/v1/health/service/blk?index=${index}&wait=10s`);
    for (let i = 0; i < 10_000 && d.blockedQueries === 0; i++) await new Promise((r) => setImmediate(r));
    await put('/v1/agent/check/warn/service:blk');
    const w = await woken;
    expect(Number(w.headers.get('x-consul-index'))).toBeGreaterThan(index);
    expect(((await w.json()) as Entry[])[0]?.Checks[1]?.Status).toBe('warning');
    // A lower requested index never blocks.
    const low = await get(`/v1/health/service/blk?index=1&wait=10s`);
    expect(low.status).toBe(200);
  });

  it('a TTL check without heartbeat goes critical (seen through a blocking query)', async () => {
    await put('/v1/agent/service/register', {
      Name: 'ttlx',
      Port: 1,
      Check: { TTL: '100ms', Status: 'passing' },
    });
    const first = await get('/v1/health/service/ttlx');
    const index = first.headers.get('x-consul-index');
    const next = await get(`/v1/health/service/ttlx?index=${index}&wait=5s`);
    const e = ((await next.json()) as Entry[])[0];
    expect(e?.Checks[1]?.Status).toBe('critical');
  });

  it('filters by tag and by the supported filter expressions', async () => {
    await put('/v1/agent/service/register', {
      Name: 'flt',
      ID: 'flt-1',
      Port: 1,
      Tags: ['a'],
      Meta: { v: '1' },
    });
    await put('/v1/agent/service/register', {
      Name: 'flt',
      ID: 'flt-2',
      Port: 2,
      Tags: ['b'],
      Meta: { v: '2' },
    });
    const ids = async (q: string) =>
      ((await (await get(`/v1/health/service/flt?${q}`)).json()) as Entry[]).map((e) => e.Service.ID).sort();
    expect(await ids('tag=a')).toEqual(['flt-1']);
    expect(await ids(`filter=${encodeURIComponent('Service.Meta.v == "2"')}`)).toEqual(['flt-2']);
    expect(await ids(`filter=${encodeURIComponent('"a" in Service.Tags')}`)).toEqual(['flt-1']);
  });
});

describe('Consul double: DeregisterCriticalServiceAfter', () => {
  it('removes a service whose check stays critical (minimum lowered for the test)', async () => {
    const fast = await startConsulDouble({ minDeregisterCriticalMs: 0 });
    try {
      const r = await fetch(`${fast.url}/v1/agent/service/register`, {
        method: 'PUT',
        body: JSON.stringify({
          Name: 'reap',
          Port: 1,
          Check: { TTL: '60s', DeregisterCriticalServiceAfter: '100ms' },
        }),
      });
      expect(r.status).toBe(200);
      const first = await fetch(`${fast.url}/v1/health/service/reap`);
      expect(await first.json()).toHaveLength(1);
      const next = await fetch(
        `${fast.url}/v1/health/service/reap?index=${first.headers.get('x-consul-index')}&wait=5s`,
      );
      expect(await next.json()).toEqual([]);
      expect(fast.agentServices().reap).toBeUndefined();
    } finally {
      await fast.close();
    }
  });
});

describe('Consul double: fidelity controls (#12)', () => {
  it('keep-alive as Go: no Keep-Alive hint, the connection stays open between requests', async () => {
    const r = await get('/v1/status/leader');
    expect(r.headers.get('keep-alive')).toBeNull();
    expect(r.headers.get('connection')).not.toBe('close');
  });

  it('node checks have ServiceID "" and belong to every service of the node; failNode bumps once', async () => {
    await put('/v1/catalog/register', {
      Node: 'ext-1',
      Address: '10.5.0.1',
      Service: { Service: 'nodehealth', ID: 'nh-1', Port: 1 },
      Check: { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' },
    });
    await put('/v1/catalog/register', {
      Node: 'ext-2',
      Address: '10.5.0.2',
      Service: { Service: 'nodehealth', ID: 'nh-2', Port: 1 },
    });
    const entries = async () => (await (await get('/v1/health/service/nodehealth')).json()) as Entry[];
    const byId = (es: Entry[]) => new Map(es.map((e) => [e.Service.ID, e.Checks]));
    let checks = byId(await entries());
    expect(checks.get('nh-1')).toEqual([expect.objectContaining({ CheckID: 'serfHealth', ServiceID: '' })]);
    expect(checks.get('nh-2')).toEqual([]); // catalog-only node: no serfHealth
    const before = d.index;
    d.failNode('ext-1');
    expect(d.index).toBe(before + 1);
    checks = byId(await entries());
    expect(checks.get('nh-1')?.[0]?.Status).toBe('critical');
    expect(await (await get('/v1/health/service/nodehealth?passing=t')).json()).toHaveLength(1);
    d.setNodeHealth('ext-1', 'passing');
    expect(await (await get('/v1/health/service/nodehealth?passing=TRUE')).json()).toHaveLength(2);
  });

  it('names and tags match case-insensitively', async () => {
    await put('/v1/agent/service/register', { Name: 'MixedCase', ID: 'mc-1', Port: 1, Tags: ['Canary'] });
    const r = await get('/v1/health/service/mixedcase?tag=CANARY');
    expect(((await r.json()) as Entry[]).map((e) => e.Service.ID)).toEqual(['mc-1']);
  });

  it('replace-existing-checks drops unlisted checks, maintenance included; node maintenance', async () => {
    await put('/v1/agent/service/register', { Name: 'rep', ID: 'rep-1', Port: 1, Check: { TTL: '60s' } });
    expect((await put('/v1/agent/service/maintenance/rep-1')).status).toBe(400);
    expect((await put('/v1/agent/service/maintenance/rep-1?enable=true')).status).toBe(200);
    await put('/v1/agent/service/register', { Name: 'rep', ID: 'rep-1', Port: 1, Check: { TTL: '60s' } });
    expect(Object.keys(d.agentChecks())).toContain('_service_maintenance:rep-1');
    await put('/v1/agent/service/register?replace-existing-checks=true', {
      Name: 'rep',
      ID: 'rep-1',
      Port: 1,
      Check: { TTL: '60s' },
    });
    expect(Object.keys(d.agentChecks())).not.toContain('_service_maintenance:rep-1');
    expect((await put('/v1/agent/maintenance?enable=true')).status).toBe(200);
    const e = ((await (await get('/v1/health/service/rep')).json()) as Entry[])[0];
    expect(e?.Checks.map((c) => c.CheckID)).toContain('_node_maintenance');
    await put('/v1/agent/maintenance?enable=false');
  });

  it('Enterprise: ns and partition scope services; CE refuses them', async () => {
    const ent = await startConsulDouble({ enterprise: true });
    try {
      const r = await fetch(`${ent.url}/v1/agent/service/register?ns=team-a`, {
        method: 'PUT',
        body: JSON.stringify({ Name: 'scoped', Port: 1 }),
      });
      expect(r.status).toBe(200);
      const inNs = await (await fetch(`${ent.url}/v1/health/service/scoped?ns=team-a`)).json();
      const inDefault = await (await fetch(`${ent.url}/v1/health/service/scoped`)).json();
      expect(inNs).toHaveLength(1);
      expect((inNs as Array<{ Service: { Namespace: string } }>)[0]?.Service.Namespace).toBe('team-a');
      expect(inDefault).toEqual([]);
    } finally {
      await ent.close();
    }
    expect((await get('/v1/health/service/scoped?ns=team-a')).status).toBe(400);
  });

  it('answers the connection over maxConnsPerClient with 429 and closes it (go-connlimit)', async () => {
    const small = await startConsulDouble({ maxConnsPerClient: 1 });
    const { Agent, request } = await import('undici');
    const agent = new Agent({ connections: 2 });
    try {
      const first = request(`${small.url}/v1/health/service/x?index=${small.index + 5}&wait=300ms`, {
        dispatcher: agent,
      });
      for (let i = 0; i < 10_000 && small.blockedQueries === 0; i++)
        await new Promise((r) => setImmediate(r));
      const second = await request(`${small.url}/v1/status/leader`, { dispatcher: agent });
      expect(second.statusCode).toBe(429);
      expect(await second.body.text()).toBe(
        'Your IP is issuing too many concurrent connections, please rate limit your calls\n',
      );
      await (await first).body.text();
    } finally {
      await agent.close();
      await small.close();
    }
  });
});

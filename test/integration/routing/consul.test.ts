import { createMesh, type Mesh } from 'proxyless';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ConsulDouble, startConsulDouble } from '../../consul-double/server.js';
import { applied, checkRouting, load, type Servers, startServers, webEntries } from './scenario.js';

describe('traffic management from Consul’s discovery chain (Consul API double)', () => {
  let consul: ConsulDouble;
  let servers: Servers;
  let mesh: Mesh | undefined;
  const base = (): string => consul.url;
  const put = async (path: string, body: unknown): Promise<void> => {
    const res = await fetch(`${base()}${path}`, { method: 'PUT', body: JSON.stringify(body) });
    expect(res.status, `${path}: ${await res.text()}`).toBe(200);
  };
  const register = (id: string, name: string, s: { host: string; port: number }, version: string) =>
    put('/v1/agent/service/register', {
      ID: id,
      Name: name,
      Address: s.host,
      Port: s.port,
      Meta: { version },
    });
  const writeEntries = async (entries: unknown[]): Promise<void> => {
    for (const e of entries) await put('/v1/config', e);
  };

  beforeAll(async () => {
    [consul, servers] = await Promise.all([startConsulDouble(), startServers()]);
    await register('web-v1', 'web', servers.v1, 'v1');
    await register('web-v2', 'web', servers.v2, 'v2');
    await register('admin-a', 'admin', servers.admin, 'v1');
  });
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
  });
  afterAll(async () => {
    await servers?.close();
    await consul?.close();
  });

  /** A mesh whose chain of `web` is in force (the chain is read when the service is first called). */
  const meshWithChain = async (): Promise<Mesh> => {
    const m = createMesh({ env: { CONSUL_HTTP_ADDR: consul.address } });
    const ready = applied(m, 'consul');
    await (await m.fetch('http://web/')).arrayBuffer();
    await ready;
    return m;
  };

  it('routes Consul’s documented examples from the compiled chain', async () => {
    await writeEntries(webEntries(10));
    mesh = await meshWithChain();
    await checkRouting(mesh);
  });

  it('follows a new chain index, and fails over with 0 failed GETs', async () => {
    await writeEntries(webEntries(0));
    mesh = await meshWithChain();
    const m = mesh;
    expect((await load(m, 'http://web/', 40)).by).toEqual({ v1: 40 });
    const shifted = applied(m, 'consul');
    await writeEntries(webEntries(100));
    await shifted;
    expect((await load(m, 'http://web/', 60)).by).toEqual({ v2: 60 });

    const back = applied(m, 'consul');
    await writeEntries(webEntries(0));
    await back;
    consul.setHealthy('web-v1', false);
    // The v1 target's set empties once the health answer arrives; until then v1 still answers.
    const r = await load(m, 'http://web/', 300);
    expect(r.failed, r.errors.join('; ')).toBe(0);
    const after = await load(m, 'http://web/', 100);
    expect(after).toEqual({ by: { v2: 100 }, failed: 0, errors: [] });
    consul.setHealthy('web-v1', true);
  });

  it('keeps the last good chain while Consul fails, and catches up after', async () => {
    await writeEntries(webEntries(0));
    mesh = await meshWithChain();
    const m = mesh;
    // Three reads of the chain get 500s (with back-off between them) around the next writes.
    consul.failNext(500, 3, { pathPrefix: '/v1/discovery-chain/web' });
    const first = applied(m, 'consul');
    await writeEntries(webEntries(100));
    await first;
    const during = await load(m, 'http://web/', 200);
    expect(during.failed, during.errors.join('; ')).toBe(0);
    expect(during.by.v2).toBe(200);
    const second = applied(m, 'consul');
    await writeEntries(webEntries(0));
    await second;
    expect(await load(m, 'http://web/', 100)).toEqual({ by: { v1: 100 }, failed: 0, errors: [] });
  });
});

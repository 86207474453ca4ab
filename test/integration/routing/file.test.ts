import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMesh, type Mesh, MeshError } from 'proxyless';
import { testRoute } from 'proxyless/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { nextEvent } from '../../support/mesh-events.js';
import {
  applied,
  checkRouting,
  expectShare,
  load,
  rejected,
  type Servers,
  startServers,
  webEntries,
} from './scenario.js';

describe('traffic management from the config file (configEntries)', () => {
  let servers: Servers;
  let dir: string;
  let file: string;
  let mesh: Mesh | undefined;
  beforeAll(async () => {
    servers = await startServers();
    dir = mkdtempSync(path.join(os.tmpdir(), 'mesh-routing-'));
    file = path.join(dir, 'mesh.json');
  });
  afterEach(async () => {
    await mesh?.close();
    mesh = undefined;
  });
  afterAll(async () => {
    await servers.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const ep = (s: { host: string; port: number }, version: string) => ({
    address: s.host,
    port: s.port,
    metadata: { version },
  });
  const doc = (entries: unknown[], webVersions: ('v1' | 'v2')[] = ['v1', 'v2']): string =>
    JSON.stringify({
      services: {
        web: { endpoints: webVersions.map((v) => ep(servers[v], v)) },
        admin: { endpoints: [ep(servers.admin, 'v1')] },
      },
      configEntries: entries,
    });
  const write = (text: string): void => {
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
  };

  it('routes Consul’s documented examples: canary split, header route, path route with PrefixRewrite', async () => {
    write(doc(webEntries(10)));
    mesh = createMesh({ env: { MESH_CONFIG_FILE: file } });
    await checkRouting(mesh);
    expect(mesh.routes('admin')).toBeUndefined();
  });

  it('fails over to the v2 subset when v1 has no endpoints, with 0 failed GETs', async () => {
    write(doc(webEntries(0)));
    mesh = createMesh({ env: { MESH_CONFIG_FILE: file } });
    const before = await load(mesh, 'http://web/', 50);
    expect(before).toEqual({ by: { v1: 50 }, failed: 0, errors: [] });
    const changed = nextEvent(
      mesh,
      (e) => e.type === 'endpoints_changed' && e.service === 'web' && e.set.endpoints.length === 0,
    );
    write(doc(webEntries(0), ['v2']));
    await changed;
    const after = await load(mesh, 'http://web/', 200);
    expect(after).toEqual({ by: { v2: 200 }, failed: 0, errors: [] });
  });

  it('names the subset target when a subset has no endpoints while its service has some', async () => {
    // Only v1 endpoints: the header route to the v2 subset (no failover) has nothing to pick.
    write(doc(webEntries(0), ['v1']));
    mesh = createMesh({ env: { MESH_CONFIG_FILE: file } });
    const error = await mesh.request('http://web/', { headers: { 'x-canary': '1' } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    // Before: `service "web" has no endpoints`, details { service: 'web' } — a missing service.
    expect(MeshError.is(error, 'MESH_NO_ENDPOINTS')).toBe(true);
    expect((error as MeshError).details).toMatchObject({
      service: 'web',
      target: 'v2.web.default.default.dc1',
    });
    expect((error as MeshError).message).toContain('v2.web.default.default.dc1');
    // The service itself still answers.
    expect((await load(mesh, 'http://web/', 10)).by).toEqual({ v1: 10 });
  });

  it('shifts 0 → 10 → 50 → 100 % to v2 under load, with 0 failed requests', async () => {
    write(doc(webEntries(0)));
    mesh = createMesh({ env: { MESH_CONFIG_FILE: file } });
    const m = mesh;
    // Traffic runs throughout (bounded: at most 6,000 requests), while the file is rewritten.
    let stop = false;
    let failed = 0;
    let sent = 0;
    const background = (async () => {
      const workers = Array.from({ length: 8 }, async () => {
        while (!stop && sent < 6000) {
          sent++;
          try {
            const res = await m.fetch('http://web/');
            await res.arrayBuffer();
            if (res.status !== 200) failed++;
          } catch {
            failed++;
          }
        }
      });
      await Promise.all(workers);
    })();
    const observed: Record<number, number> = {};
    for (const weight of [0, 10, 50, 100]) {
      if (weight !== 0) {
        const next = applied(m, 'file');
        write(doc(webEntries(weight)));
        await next;
      }
      const r = await load(m, 'http://web/', 1000);
      expect(r.failed, r.errors.join('; ')).toBe(0);
      observed[weight] = (r.by.v2 ?? 0) / 1000;
      expectShare(r.by.v2 ?? 0, 1000, weight / 100);
    }
    stop = true;
    await background;
    expect(failed).toBe(0);
    expect(sent).toBeGreaterThan(0);
    expect(observed[0]).toBe(0);
    expect(observed[100]).toBe(1);
  }, 90_000);

  it('rejects bad entries at start-up, naming the entry and field', () => {
    const bad = webEntries(10).map((e) =>
      (e as { Kind: string }).Kind === 'service-splitter'
        ? {
            ...(e as object),
            Splits: [
              { Weight: 80, ServiceSubset: 'v1' },
              { Weight: 10, ServiceSubset: 'v2' },
            ],
          }
        : e,
    );
    write(doc(bad));
    let error: unknown;
    try {
      createMesh({ env: { MESH_CONFIG_FILE: file } });
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    expect((error as Error).message).toMatch(/service-splitter\/web/);
    expect((error as Error).message).toMatch(/Splits/);

    write(
      doc([
        ...webEntries(10),
        { Kind: 'service-resolver', Name: 'admin', Subsets: { x: { Filter: 'Service.Nope == 1' } } },
      ]),
    );
    expect(() => createMesh({ env: { MESH_CONFIG_FILE: file } })).toThrow(
      /service-resolver\/admin.*Subsets/s,
    );
  });

  it('keeps the last good version on a bad one at run time, and no request fails', async () => {
    write(doc(webEntries(0)));
    mesh = createMesh({ env: { MESH_CONFIG_FILE: file } });
    const m = mesh;
    expect((await load(m, 'http://web/', 40)).by).toEqual({ v1: 40 });
    const rej = rejected(m, 'file');
    // A router on a tcp service: Consul's own message.
    write(
      doc([
        ...webEntries(100).filter(
          (e) =>
            (e as { Name: string }).Name !== 'admin' || (e as { Kind: string }).Kind !== 'service-defaults',
        ),
        { Kind: 'service-router', Name: 'admin', Routes: [] },
      ]),
    );
    const event = await rej;
    expect(event.error.message).toMatch(/admin/);
    expect(event.error.message).toMatch(/does not permit advanced routing or splitting/);
    const r = await load(m, 'http://web/', 200);
    expect(r).toEqual({ by: { v1: 200 }, failed: 0, errors: [] });
  });
  it('testRoute (proxyless/testing) decides as the mesh routes: server, path, Host, header edits', async () => {
    // Splits of 0 and 100: the draw decides nothing, so the two are compared request by request.
    for (const v2Weight of [0, 100]) {
      const entries = webEntries(v2Weight);
      write(doc(entries));
      const m = createMesh({ env: { MESH_CONFIG_FILE: file } });
      try {
        for (const [url, headers] of [
          ['http://web/a?q=1', {}],
          ['http://web/admin/users', {}],
          ['http://web/b', { 'x-canary': '1' }],
        ] as const) {
          const expected = testRoute(entries, url, { headers });
          const res = await m.fetch(url, { headers });
          const body = await res.text();
          const server = expected.target.service === 'admin' ? 'admin' : expected.target.subset;
          expect([v2Weight, url, res.headers.get('x-served-by')]).toEqual([v2Weight, url, server]);
          expect(body).toBe(`${server} ${expected.path}`);
          expect(res.headers.get('x-seen-host')).toBe(expected.headers.find(([k]) => k === 'host')?.[1]);
          const tag = expected.headers.find(([k]) => k === 'x-routed')?.[1] ?? '';
          expect(res.headers.get('x-seen-canary-tag')).toBe(tag);
        }
      } finally {
        await m.close();
      }
    }
  });
});

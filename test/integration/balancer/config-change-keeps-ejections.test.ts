import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { VirtualClock } from 'proxyless/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/**
 * A config change that builds a new balancer (`loadBalancer`, `outlierDetection`) keeps what the
 * old one knew: an endpoint ejected for consecutive 5xx stays out for the time it had left, with
 * its counts, EWMA and ejection multiplier (docs/configuration.md: the balancer "keeps its
 * endpoints, latency averages and ejections"). Turning outlier detection off readmits it, with a
 * `readmit` event.
 */

let good: TestServer;
let bad: TestServer;
let dir: string;
let file: string;
let mesh: Mesh | undefined;
const OUTLIERS = { consecutive5xx: 2, maxEjectionPercent: 50, baseEjectionTime: '60s', interval: '7s' };

beforeAll(async () => {
  good = await startServer('good');
  bad = await startServer('bad', (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('bad');
    });
  });
  dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-balancer-carry-'));
  file = path.join(dir, 'mesh.json');
});
afterEach(async () => {
  await mesh?.close();
  mesh = undefined;
});
afterAll(async () => {
  await Promise.all([good.close(), bad.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function write(api: Record<string, unknown>): void {
  writeFileSync(
    file,
    JSON.stringify({
      services: {
        api: {
          endpoints: `${good.address},${bad.address}`,
          retry: false,
          outlierDetection: OUTLIERS,
          ...api,
        },
      },
    }),
  );
}

function start(clock: VirtualClock): { mesh: Mesh; balancerEvents: Array<Record<string, unknown>> } {
  const m = createMesh({ env: {}, configFile: file, clock });
  mesh = m;
  const balancerEvents: Array<Record<string, unknown>> = [];
  m.onEvent((e: MeshEvent) => {
    if (e.type === 'balancer' && e.event.type !== 'connectivity') balancerEvents.push({ ...e.event });
  });
  return { mesh: m, balancerEvents };
}

async function call(m: Mesh): Promise<number> {
  const r = await m.request('http://api/');
  await r.body.dump();
  return r.statusCode;
}

/** Calls until the bad endpoint is ejected (bounded); the ejection event. */
async function ejectBad(m: Mesh, events: Array<Record<string, unknown>>): Promise<Record<string, unknown>> {
  const before = events.filter((e) => e.type === 'eject').length;
  for (let i = 0; i < 100; i++) {
    await call(m);
    const ejections = events.filter((e) => e.type === 'eject');
    if (ejections.length > before) return ejections[ejections.length - 1] as Record<string, unknown>;
  }
  throw new Error('the failing endpoint was never ejected');
}

function endpoint(m: Mesh, id: string) {
  return m.stats('api')?.endpoints.find((e) => e.id === id);
}

describe('a rebuilt balancer keeps the old one’s endpoint state', () => {
  it('a loadBalancer.policy change keeps an ejection for the time it had left, and its counts', async () => {
    const clock = new VirtualClock();
    write({});
    const { mesh: m, balancerEvents } = start(clock);
    const first = await ejectBad(m, balancerEvents);
    expect(first).toMatchObject({ endpoint: bad.address, reason: 'consecutive_5xx', durationMs: 60_000 });
    const before = endpoint(m, bad.address);
    const goodBefore = endpoint(m, good.address);
    expect(before).toMatchObject({ ejected: true, ejections: 1 });
    expect(goodBefore?.ewmaMs).toBeDefined();

    await clock.advance(20_000);
    const applied = new Promise<Extract<MeshEvent, { type: 'config_applied' }>>((resolve) => {
      const sub = m.onEvent((e) => {
        if (e.type === 'config_applied') {
          sub.dispose();
          resolve(e);
        }
      });
    });
    write({ loadBalancer: { policy: 'least_request' } });
    await m.reloadConfig();
    expect((await applied).rebuilt.get('api')).toEqual(['balancer']);
    expect(m.stats('api')?.policy).toBe('least_request');
    // Still ejected, with the counts it had; nothing said it came back.
    expect(endpoint(m, bad.address)).toMatchObject({
      ejected: true,
      ejections: 1,
      requests: before?.requests,
      failures: before?.failures,
    });
    expect(endpoint(m, good.address)).toMatchObject({ requests: goodBefore?.requests });
    expect(endpoint(m, good.address)?.ewmaMs).toBeDefined();
    expect(balancerEvents.filter((e) => e.type === 'readmit')).toEqual([]);
    const served = bad.requests;
    for (let i = 0; i < 6; i++) expect(await call(m)).toBe(200);
    expect(bad.requests).toBe(served);

    // The ejection ends 60 s after it began, not 60 s after the change.
    await clock.advance(39_000);
    expect(endpoint(m, bad.address)?.ejected).toBe(true);
    await clock.advance(1_000);
    expect(endpoint(m, bad.address)?.ejected).toBe(false);
    expect(balancerEvents.filter((e) => e.type === 'readmit')).toEqual([
      expect.objectContaining({ endpoint: bad.address }),
    ]);

    // The multiplier came along too: ejected again before a sweep finds it healthy (sweeps every
    // 7 s from the change: none at 60 s), it is out for twice the base time.
    const second = await ejectBad(m, balancerEvents);
    expect(second).toMatchObject({ endpoint: bad.address, durationMs: 120_000 });
    expect(endpoint(m, bad.address)?.ejections).toBe(2);
  });

  it('an outlierDetection change keeps the ejection; turning it off readmits with an event', async () => {
    const clock = new VirtualClock();
    write({});
    const { mesh: m, balancerEvents } = start(clock);
    await ejectBad(m, balancerEvents);

    write({ outlierDetection: { ...OUTLIERS, consecutive5xx: 3 } });
    await m.reloadConfig();
    expect(endpoint(m, bad.address)).toMatchObject({ ejected: true, ejections: 1 });
    expect(balancerEvents.filter((e) => e.type === 'readmit')).toEqual([]);

    write({ outlierDetection: false });
    await m.reloadConfig();
    expect(endpoint(m, bad.address)).toMatchObject({ ejected: false, ejections: 1 });
    expect(balancerEvents.filter((e) => e.type === 'readmit')).toEqual([
      expect.objectContaining({ endpoint: bad.address }),
    ]);
    // It takes traffic again.
    const served = bad.requests;
    const statuses = new Set<number>();
    for (let i = 0; i < 4; i++) statuses.add(await call(m));
    expect(bad.requests).toBeGreaterThan(served);
    expect(statuses).toEqual(new Set([200, 500]));
  });
});

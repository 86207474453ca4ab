import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { startDnsmasq } from '../support/dnsmasq.js';
import { startEtcd } from '../support/etcd-server.js';
import {
  type Backend,
  backendAttempts,
  errorCounts,
  latency,
  pause,
  recoveryMs,
  runLoad,
  type Sample,
  startBackend,
} from './harness.js';
import type { ScenarioResult } from './report.js';

/** Scenarios 7–10: the registry, the config file and DNS fail; and a memory soak. */

async function figures(
  samples: readonly Sample[],
  backends: readonly Backend[],
  faultFrom: number,
  faultTo: number,
): Promise<Omit<ScenarioResult, 'n' | 'name' | 'target' | 'met' | 'notes'>> {
  const healthy = latency(samples, 0, faultFrom);
  return {
    requests: samples.length,
    errors: samples.filter((s) => s.error !== undefined).length,
    errorCodes: errorCounts(samples),
    amplification: (await backendAttempts(backends)) / samples.length,
    healthy,
    fault: latency(samples, faultFrom, faultTo),
    recoveryMs: recoveryMs(samples, faultTo, Math.max(2 * healthy.p99, healthy.p99 + 10)),
  };
}

/** Poll `cond` every 50 ms, at most `maxMs`; returns the time it took, or undefined. */
async function until(cond: () => boolean, maxMs: number): Promise<number | undefined> {
  const t = performance.now();
  while (performance.now() - t < maxMs) {
    if (cond()) return performance.now() - t;
    await pause(50);
  }
  return undefined;
}

async function threeBackends(): Promise<Backend[]> {
  return Promise.all(['a', 'b', 'c'].map((n) => startBackend(n)));
}

const KEY = (id: string): string => `/proxyless/services/chaos/${id}`;

export async function etcdOutage(): Promise<ScenarioResult> {
  const backends = await threeBackends();
  const etcd = await startEtcd();
  let mesh: Mesh | undefined;
  try {
    for (const b of backends)
      await etcd.put(KEY(b.name), JSON.stringify({ address: '127.0.0.1', port: b.port }));
    mesh = createMesh({ env: { MESH_REGISTRY: 'etcd', MESH_ETCD_ENDPOINTS: etcd.endpoint } });
    const m = mesh;
    const leaver = backends[2] as Backend;
    let faultFrom = Number.POSITIVE_INFINITY;
    let faultTo = Number.POSITIVE_INFINITY;
    let applied: number | undefined;
    let done = false;
    const t0 = performance.now();
    const script = (async () => {
      await pause(2000);
      faultFrom = performance.now() - t0;
      await etcd.halt();
      await pause(5000);
      await leaver.close(); // the endpoint leaves while nobody can tell the registry
      await pause(25_000);
      faultTo = performance.now() - t0;
      const back = performance.now();
      await etcd.resume();
      await etcd.del(KEY(leaver.name)); // what its lease expiry (or deregistration) does
      const waited = await until(() => m.endpoints('chaos')?.endpoints.length === 2, 15_000);
      applied = waited === undefined ? undefined : performance.now() - back;
      await pause(1000);
      done = true;
    })();
    const { samples } = await runLoad(m, {
      url: 'http://chaos/',
      callers: 16,
      maxRequests: 1_000_000,
      maxMs: 55_000,
      shouldStop: () => done,
    });
    await script;
    const f = await figures(samples, backends, faultFrom, faultTo);
    return {
      n: 7,
      name: 'real etcd stopped for 30 s while traffic runs; one endpoint leaves meanwhile',
      target: '0 errors on the last known set; the change applied on recovery',
      ...f,
      met: f.errors === 0 && applied !== undefined,
      notes: [
        applied === undefined
          ? 'the change was not applied within 15 s'
          : `change applied ${applied.toFixed(0)} ms after etcd was restarted`,
      ],
    };
  } finally {
    await mesh?.close();
    await etcd.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
}

export async function configCorrupted(): Promise<ScenarioResult> {
  const backends = await threeBackends();
  const dir = mkdtempSync(join(tmpdir(), 'proxyless-chaos-'));
  const file = join(dir, 'mesh.json');
  const doc = (bs: readonly Backend[], policy: string): string =>
    JSON.stringify({
      services: {
        chaos: {
          endpoints: bs.map((b) => ({ address: '127.0.0.1', port: b.port })),
          loadBalancer: { policy },
        },
      },
    });
  const atomic = (text: string): void => {
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
  };
  atomic(doc(backends.slice(0, 2), 'round_robin'));
  const mesh = createMesh({ env: { MESH_CONFIG_FILE: file } });
  const rejected: string[] = [];
  const sub = mesh.onEvent((e: MeshEvent) => {
    if (e.type === 'config_rejected') rejected.push(e.error.code);
  });
  try {
    let faultFrom = Number.POSITIVE_INFINITY;
    let faultTo = Number.POSITIVE_INFINITY;
    let applied: number | undefined;
    let done = false;
    const t0 = performance.now();
    const script = (async () => {
      await pause(2000);
      faultFrom = performance.now() - t0;
      writeFileSync(file, '{"services": {"chaos": {"endpoints": [{"address": "127.0.0.1", "po'); // torn write
      await pause(3000);
      faultTo = performance.now() - t0;
      atomic(doc(backends, 'least_request'));
      applied = await until(() => {
        const s = mesh.stats('chaos');
        return s?.policy === 'least_request' && s.endpoints.length === 3;
      }, 10_000);
      await pause(1000);
      done = true;
    })();
    const { samples } = await runLoad(mesh, {
      url: 'http://chaos/',
      callers: 16,
      maxRequests: 1_000_000,
      maxMs: 20_000,
      shouldStop: () => done,
    });
    await script;
    const f = await figures(samples, backends, faultFrom, faultTo);
    return {
      n: 8,
      name: 'the config file corrupted mid-run (torn write), then fixed',
      target: '0 errors; the last good config stays; the fix applies',
      ...f,
      met: f.errors === 0 && rejected.length > 0 && applied !== undefined,
      notes: [
        `config_rejected ×${rejected.length}`,
        applied === undefined
          ? 'the fix was not applied within 10 s'
          : `fix applied ${applied.toFixed(0)} ms after the write`,
      ],
    };
  } finally {
    sub.dispose();
    await mesh.close();
    await Promise.all(backends.map((b) => b.close()));
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function dnsDown(): Promise<ScenarioResult> {
  const backends = await threeBackends();
  const dns = await startDnsmasq({
    ttl: 1,
    srv: backends.map((b, i) => ({
      name: '_http._tcp.chaos.mesh.test',
      target: `node-${i}.mesh.test`,
      port: b.port,
    })),
    hosts: backends.map((_, i) => ({ name: `node-${i}.mesh.test`, addresses: ['127.0.0.1'] })),
  });
  const mesh = createMesh({
    env: { MESH_DNS_SERVERS: dns.server, MESH_DNS_DOMAIN: 'mesh.test', MESH_DNS_MIN_REFRESH: '1s' },
  });
  let resolverErrors = 0;
  const sub = mesh.onEvent((e: MeshEvent) => {
    if (e.type === 'resolver_error') resolverErrors++;
  });
  try {
    const faultFrom = 2000;
    const faultTo = 10_000;
    let minEndpoints = Number.POSITIVE_INFINITY;
    const t0 = performance.now();
    const script = (async () => {
      await pause(faultFrom);
      await dns.stop();
      while (performance.now() - t0 < faultTo) {
        minEndpoints = Math.min(minEndpoints, mesh.endpoints('chaos.mesh.test')?.endpoints.length ?? 0);
        await pause(100);
      }
      await dns.start();
    })();
    const { samples } = await runLoad(mesh, {
      url: 'http://chaos.mesh.test/',
      callers: 16,
      maxRequests: 1_000_000,
      maxMs: faultTo + 2000,
    });
    await script;
    const f = await figures(samples, backends, faultFrom, faultTo);
    return {
      n: 9,
      name: 'the DNS server (dnsmasq) stopped for 8 s',
      target: 'the last answer stays, 0 errors',
      ...f,
      met: f.errors === 0 && minEndpoints === 3,
      notes: [`resolver_error ×${resolverErrors}`, `endpoints during the outage ≥ ${minEndpoints}`],
    };
  } finally {
    sub.dispose();
    await mesh.close();
    await dns.close();
    await Promise.all(backends.map((b) => b.close()));
  }
}

/** `global.gc`, made available without a command-line flag. */
function gcFunction(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

function snapshot(gc: () => void): { heapMB: number; handles: Record<string, number> } {
  gc();
  gc();
  const handles: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) handles[r] = (handles[r] ?? 0) + 1;
  return { heapMB: process.memoryUsage().heapUsed / 2 ** 20, handles };
}

export async function soak(): Promise<ScenarioResult> {
  const backends = await threeBackends();
  const mesh = createMesh({ env: { MESH_ENDPOINTS_CHAOS: backends.map((b) => b.address).join(',') } });
  const gc = gcFunction();
  try {
    const warmUp = 10_000;
    const total = 60_000;
    let first: ReturnType<typeof snapshot> | undefined;
    let last: ReturnType<typeof snapshot> | undefined;
    const t0 = performance.now();
    const script = (async () => {
      await pause(warmUp);
      first = snapshot(gc);
      await pause(total - warmUp - 1000 - (performance.now() - t0 - warmUp));
      last = snapshot(gc);
    })();
    const { samples } = await runLoad(mesh, {
      url: 'http://chaos/',
      callers: 64,
      maxRequests: 10_000_000,
      maxMs: total,
    });
    await script;
    const f = await figures(samples, backends, warmUp, total);
    const growth = (last?.heapMB ?? 0) - (first?.heapMB ?? 0);
    const grew = Object.entries(last?.handles ?? {})
      .filter(([k, v]) => v > (first?.handles[k] ?? 0))
      .map(([k, v]) => `${k} ${first?.handles[k] ?? 0}→${v}`);
    return {
      n: 10,
      name: '60 s at full rate, 64 callers (memory soak)',
      target: 'heap growth after warm-up ≤ 5 MB; no growth in handles or timers',
      ...f,
      recoveryMs: undefined,
      met: growth <= 5 && grew.length === 0 && f.errors === 0,
      notes: [
        `heap ${first?.heapMB.toFixed(1)} → ${last?.heapMB.toFixed(1)} MB (${growth >= 0 ? '+' : ''}${growth.toFixed(2)} MB)`,
        grew.length === 0 ? 'handles and timers flat' : `grew: ${grew.join(', ')}`,
        `${(samples.length / (total / 1000)).toFixed(0)} requests/s`,
      ],
    };
  } finally {
    await mesh.close();
    await Promise.all(backends.map((b) => b.close()));
  }
}

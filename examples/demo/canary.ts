/**
 * `pnpm demo canary` — a canary rollout with Consul's own config entries and no Consul: v1 and v2
 * instances of `web` (tagged `Meta.version`), a `service-splitter` moved 0 → 10 → 50 → 100 % to v2
 * by editing the config file while traffic runs, then a `service-router` that sends
 * `x-canary: 1` to v2 only.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMesh, type Mesh } from 'proxyless';
import { type DemoBackend, startBackend } from './backends.js';

type Say = (s?: string) => void;

function entries(v2Weight: number, router: boolean): unknown[] {
  return [
    { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
    {
      Kind: 'service-resolver',
      Name: 'web',
      DefaultSubset: 'v1',
      Subsets: {
        v1: { Filter: 'Service.Meta.version == "v1"' },
        v2: { Filter: 'Service.Meta.version == "v2"' },
      },
    },
    {
      Kind: 'service-splitter',
      Name: 'web',
      Splits: [
        { Weight: 100 - v2Weight, ServiceSubset: 'v1' },
        { Weight: v2Weight, ServiceSubset: 'v2' },
      ],
    },
    ...(router
      ? [
          {
            Kind: 'service-router',
            Name: 'web',
            Routes: [
              {
                Match: { HTTP: { Header: [{ Name: 'x-canary', Exact: '1' }] } },
                Destination: { ServiceSubset: 'v2' },
              },
            ],
          },
        ]
      : []),
  ];
}

function write(file: string, backends: DemoBackend[], v2Weight: number, router: boolean): void {
  const doc = {
    services: {
      web: {
        endpoints: backends.map((b) => ({
          address: '127.0.0.1',
          port: b.port,
          metadata: { version: b.name.split('-')[0] },
        })),
      },
    },
    configEntries: entries(v2Weight, router),
  };
  writeFileSync(`${file}.tmp`, JSON.stringify(doc, null, 2));
  renameSync(`${file}.tmp`, file);
}

/** Send `n` requests (8 at a time); count answers by version and failures. */
async function traffic(mesh: Mesh, n: number, headers: Record<string, string> = {}) {
  const by = { v1: 0, v2: 0 };
  let failed = 0;
  let issued = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (issued < n) {
        issued++;
        try {
          const res = await mesh.fetch('http://web/', { headers });
          await res.arrayBuffer();
          const v = (res.headers.get('x-served-by') ?? '').split('-')[0];
          if (res.status === 200 && (v === 'v1' || v === 'v2')) by[v]++;
          else failed++;
        } catch {
          failed++;
        }
      }
    }),
  );
  return { by, failed };
}

const pct = (x: number, n: number): string => `${((100 * x) / n).toFixed(1).padStart(5)} %`;

export async function canaryDemo(say: Say): Promise<void> {
  const started = performance.now();
  const backends = await Promise.all(['v1-a', 'v1-b', 'v2-a'].map(startBackend));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-canary-'));
  const file = path.join(dir, 'mesh.json');
  write(file, backends, 0, false);
  say(`web: ${backends.map((b) => `${b.name}=127.0.0.1:${b.port}`).join(', ')} (Meta.version v1 / v2)`);
  say(`config file: ${file} (services + configEntries)`);
  const mesh = createMesh({ env: { MESH_CONFIG_FILE: file }, serviceName: 'demo-canary' });
  let total = 0;
  let failed = 0;
  // Background traffic runs across every config change (bounded: 20,000 requests at most).
  let stop = false;
  let background = 0;
  const bg = (async () => {
    await Promise.all(
      Array.from({ length: 2 }, async () => {
        while (!stop && background < 20_000) {
          background++;
          try {
            const res = await mesh.fetch('http://web/');
            await res.arrayBuffer();
            if (res.status !== 200) failed++;
          } catch {
            failed++;
          }
        }
      }),
    );
  })();
  try {
    say('\nservice-splitter web: v1 / v2 weights, 600 requests per step while traffic runs');
    for (const w of [0, 10, 50, 100]) {
      if (w > 0) {
        const applied = new Promise<void>((resolve) => {
          const sub = mesh.onEvent((e) => {
            if (e.type === 'config_applied' && e.source === 'file') {
              sub.dispose();
              resolve();
            }
          });
        });
        write(file, backends, w, false);
        await applied;
      }
      const r = await traffic(mesh, 600);
      total += 600;
      failed += r.failed;
      say(
        `  weight v2 ${String(w).padStart(3)} % → observed v1 ${pct(r.by.v1, 600)}  v2 ${pct(r.by.v2, 600)}  failed ${r.failed}`,
      );
    }
    const applied = new Promise<void>((resolve) => {
      const sub = mesh.onEvent((e) => {
        if (e.type === 'config_applied' && e.source === 'file') {
          sub.dispose();
          resolve();
        }
      });
    });
    write(file, backends, 0, true);
    await applied;
    say('\nsplitter back to 0 %, plus service-router web: header x-canary: 1 → subset v2');
    const plain = await traffic(mesh, 300);
    const canary = await traffic(mesh, 300, { 'x-canary': '1' });
    total += 600;
    failed += plain.failed + canary.failed;
    say(`  without the header  → v1 ${pct(plain.by.v1, 300)}  v2 ${pct(plain.by.v2, 300)}`);
    say(`  with x-canary: 1    → v1 ${pct(canary.by.v1, 300)}  v2 ${pct(canary.by.v2, 300)}`);
    stop = true;
    await bg;
    total += background;
    const routing = mesh.stats('web')?.routing;
    say(`\nper target: ${JSON.stringify(routing?.targets)}`);
    say(
      `${total} requests (${background} in the background across the changes), ${failed} failed, ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    if (failed > 0) process.exitCode = 1;
  } finally {
    stop = true;
    await bg;
    await mesh.close();
    await Promise.all(backends.map((b) => b.close()));
    rmSync(dir, { recursive: true, force: true });
  }
}

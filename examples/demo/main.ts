/**
 * `pnpm demo` — the mesh with no external server: three backends on 127.0.0.1, a config file as
 * the registry, traffic through `mesh.fetch` and through Node's global `fetch` after
 * `mesh.install()`, then an endpoint removed from the file while traffic runs.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMesh } from 'proxyless';
import { type DemoBackend, startBackend } from './backends.js';
import { balancingDemo } from './balancing.js';
import { canaryDemo } from './canary.js';
import { registryDemo } from './registry.js';
import { resilienceDemo } from './resilience.js';
import { EndpointStats } from './stats.js';

const say = (s = ''): void => {
  process.stdout.write(`${s}\n`);
};

function writeConfig(file: string, backends: DemoBackend[]): void {
  const doc = {
    services: {
      greeter: {
        endpoints: backends.map((b) => ({ address: '127.0.0.1', port: b.port, metadata: { name: b.name } })),
      },
    },
  };
  // Write then rename: readers never see a half-written file.
  writeFileSync(`${file}.tmp`, JSON.stringify(doc, null, 2));
  renameSync(`${file}.tmp`, file);
}

async function drive(
  stats: EndpointStats,
  n: number,
  call: () => Promise<Response>,
  concurrency = 8,
): Promise<void> {
  let issued = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (issued < n) {
        issued++;
        const t0 = performance.now();
        try {
          const res = await call();
          await res.text();
          stats.record(res.headers.get('x-served-by') ?? '?', performance.now() - t0);
        } catch {
          stats.error();
        }
      }
    }),
  );
}

async function main(): Promise<void> {
  if (process.argv.includes('canary')) {
    const deadline = setTimeout(() => {
      say('canary demo did not finish within 30 s');
      process.exit(1);
    }, 30_000);
    deadline.unref();
    await canaryDemo(say);
    return;
  }
  if (process.argv.includes('registry')) {
    await registryDemo(say);
    return;
  }
  const deadline = setTimeout(() => {
    say('demo did not finish within 15 s');
    process.exit(1);
  }, 15_000);
  deadline.unref();

  const backends = await Promise.all(['alpha', 'bravo', 'charlie'].map(startBackend));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'proxyless-demo-'));
  const file = path.join(dir, 'mesh.json');
  writeConfig(file, backends);
  say(`three backends on 127.0.0.1: ${backends.map((b) => `${b.name}=${b.port}`).join(', ')}`);
  say(`registry: config file ${file}`);

  const mesh = createMesh({ env: { MESH_CONFIG_FILE: file }, serviceName: 'demo-client' });
  try {
    say('\n1) 300 requests through mesh.fetch("http://greeter/")');
    const s1 = new EndpointStats();
    await drive(s1, 300, () => mesh.fetch('http://greeter/hello'));
    say(s1.table('   round_robin over the file registry:'));

    say("\n2) 300 requests through Node's global fetch after mesh.install()");
    const undo = mesh.install();
    const s2 = new EndpointStats();
    await drive(s2, 300, () => fetch('http://greeter/hello'));
    undo();
    say(s2.table('   global fetch, same mesh:'));

    say('\n3) charlie is removed from the config file while traffic runs');
    const s3 = new EndpointStats();
    const changed = new Promise<void>((resolve) => {
      const sub = mesh.onEvent((e) => {
        if (e.type === 'endpoints_changed' && e.set.endpoints.length === 2) {
          sub.dispose();
          resolve();
        }
      });
    });
    const traffic = drive(s3, 200, () => mesh.fetch('http://greeter/hello'), 4);
    writeConfig(file, backends.slice(0, 2));
    await changed;
    await traffic;
    say(s3.table('   while the file changed (charlie served only before the change):'));
    const s4 = new EndpointStats();
    await drive(s4, 200, () => mesh.fetch('http://greeter/hello'));
    say(s4.table('   after the change:'));
    const failed = s1.errors + s2.errors + s3.errors + s4.errors;
    say(
      `\nendpoint set now: ${mesh
        .endpoints('greeter')
        ?.endpoints.map((e) => e.id)
        .join(', ')}; failed requests overall: ${failed}`,
    );
    if (failed > 0) process.exitCode = 1;
  } finally {
    await mesh.close();
    await Promise.all(backends.map((b) => b.close()));
    rmSync(dir, { recursive: true, force: true });
  }
  const lbFailed = await balancingDemo(say);
  if (lbFailed > 0) process.exitCode = 1;
  const resFailed = await resilienceDemo(say);
  if (resFailed > 0) process.exitCode = 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});

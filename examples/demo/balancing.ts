/**
 * Demo part 2: balancing sees every request. One endpoint 10× slower is avoided by `peak_ewma`
 * and `least_request`; one answering 503 is ejected by outlier detection and readmitted after its
 * ejection time.
 */
import { createMesh, type Mesh } from 'proxyless';
import { type DemoBackend, startBackend } from './backends.js';
import { EndpointStats } from './stats.js';

type Say = (s?: string) => void;

async function drive(mesh: Mesh, stats: EndpointStats, n: number, concurrency = 16): Promise<void> {
  let issued = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (issued < n) {
        issued++;
        const t0 = performance.now();
        try {
          const res = await mesh.request('http://greeter/hello');
          await res.body.text();
          const who = res.headers['x-served-by'];
          if (res.statusCode >= 500) stats.error();
          else stats.record(typeof who === 'string' ? who : '?', performance.now() - t0);
        } catch {
          stats.error();
        }
      }
    }),
  );
}

function endpointsOf(backends: DemoBackend[]): string {
  return backends.map((b) => `127.0.0.1:${b.port}`).join(',');
}

export function statsTable(mesh: Mesh, service: string, names: Map<string, string>): string {
  const s = mesh.stats(service);
  if (!s) return '  (no stats)';
  const lines = [
    `  ${'endpoint'.padEnd(10)} ${'requests'.padStart(8)} ${'failures'.padStart(8)} ${'ewma ms'.padStart(8)} ${'ejected'.padStart(8)} ${'ejections'.padStart(9)}`,
  ];
  for (const e of s.endpoints) {
    lines.push(
      `  ${(names.get(`${e.address}:${e.port}`) ?? e.id).padEnd(10)} ${String(e.requests).padStart(8)} ${String(e.failures).padStart(8)} ${(e.ewmaMs === undefined ? '-' : e.ewmaMs.toFixed(1)).padStart(8)} ${(e.ejected ? 'yes' : 'no').padStart(8)} ${String(e.ejections).padStart(9)}`,
    );
  }
  lines.push(`  policy ${s.policy}; panic mode: ${s.panic ? 'ON' : 'off'}`);
  return lines.join('\n');
}

export async function balancingDemo(say: Say): Promise<number> {
  const backends = await Promise.all(['alpha', 'bravo', 'charlie'].map(startBackend));
  const names = new Map(backends.map((b) => [`127.0.0.1:${b.port}`, b.name]));
  let failed = 0;
  try {
    for (const b of backends) b.delayMs = 2;
    backends[1]!.delayMs = 20; // bravo: 10× slower
    say('\n4) bravo answers 10× slower (20 ms vs 2 ms); 400 requests per policy, 16 callers');
    for (const policy of ['round_robin', 'least_request', 'peak_ewma'] as const) {
      const mesh = createMesh({
        env: {},
        services: { greeter: { endpoints: endpointsOf(backends), loadBalancer: { policy } } },
      });
      try {
        const stats = new EndpointStats();
        await drive(mesh, stats, 400);
        say(stats.table(`   ${policy}:`));
        failed += stats.errors;
      } finally {
        await mesh.close();
      }
    }

    for (const b of backends) b.delayMs = 0;
    backends[2]!.failing = true; // charlie answers 503
    say(
      '\n5) charlie starts answering 503: outlier detection ejects it (3 consecutive 5xx, 1 s base ejection)',
    );
    const mesh = createMesh({
      env: {},
      services: {
        greeter: {
          endpoints: endpointsOf(backends),
          outlierDetection: {
            consecutive5xx: 3,
            baseEjectionTime: '1s',
            interval: '250ms',
            maxEjectionPercent: 50,
          },
        },
      },
    });
    try {
      const ejected = new Promise<void>((resolve) => {
        const sub = mesh.onEvent((e) => {
          if (e.type === 'balancer' && e.event.type === 'eject') {
            say(
              `   event: ejected ${names.get(e.event.endpoint) ?? e.event.endpoint} (${e.event.reason}) for ${e.event.durationMs} ms`,
            );
            sub.dispose();
            resolve();
          }
        });
      });
      const s1 = new EndpointStats();
      await drive(mesh, s1, 60, 1);
      await ejected;
      const s2 = new EndpointStats();
      await drive(mesh, s2, 200, 8);
      say(s2.table('   after the ejection (charlie gets nothing; 503s before it counted as failures):'));
      say(statsTable(mesh, 'greeter', names));
      backends[2]!.failing = false;
      say('   charlie recovers; waiting for its ejection time to pass…');
      await new Promise<void>((resolve) => {
        const sub = mesh.onEvent((e) => {
          if (e.type === 'balancer' && e.event.type === 'readmit') {
            say(`   event: readmitted ${names.get(e.event.endpoint) ?? e.event.endpoint}`);
            sub.dispose();
            resolve();
          }
        });
      });
      const s3 = new EndpointStats();
      await drive(mesh, s3, 300, 8);
      say(s3.table('   after readmission:'));
      say(statsTable(mesh, 'greeter', names));
      failed += s2.errors + s3.errors;
    } finally {
      await mesh.close();
    }
  } finally {
    await Promise.all(backends.map((b) => b.close()));
  }
  return failed;
}

/**
 * Demo part 3: a backend is killed under load and no request fails (idempotent requests are
 * retried on the other endpoints); a failing service trips its circuit breaker, which fails fast
 * while open and closes again once a trial call succeeds.
 */
import { createMesh, MeshError } from 'proxyless';
import { startBackend } from './backends.js';
import { EndpointStats } from './stats.js';

type Say = (s?: string) => void;

export async function resilienceDemo(say: Say): Promise<number> {
  const backends = await Promise.all(['alpha', 'bravo', 'charlie'].map(startBackend));
  let failed = 0;
  try {
    say('\n6) charlie is killed while 600 GETs run (16 callers); retries go to the other endpoints');
    const mesh = createMesh({
      env: {},
      services: {
        greeter: {
          endpoints: backends.map((b) => `127.0.0.1:${b.port}`).join(','),
          retry: { maxRetries: 2, retryOn: ['connect-failure', 'reset', 'gateway-error'] },
          // Envoy's default allows 3 retries in flight at once; 16 callers losing one endpoint
          // can need more at the same instant.
          circuitBreaker: { maxRetries: 16 },
        },
      },
    });
    try {
      const stats = new EndpointStats();
      let issued = 0;
      let retried = 0;
      const killAt = 150;
      let killed: Promise<void> | undefined;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (issued < 600) {
            issued++;
            if (issued === killAt) killed = backends[2]!.close();
            const t0 = performance.now();
            try {
              const res = await mesh.request('http://greeter/hello');
              await res.body.text();
              if (res.statusCode !== 200) stats.error();
              else stats.record(String(res.headers['x-served-by']), performance.now() - t0);
            } catch (error) {
              stats.error();
              if (process.env.DEMO_DEBUG) console.error(error);
            }
          }
        }),
      );
      await killed;
      const s = mesh.stats('greeter');
      retried = s ? s.endpoints.reduce((n, e) => n + e.requests, 0) - 600 : 0;
      say(stats.table('   per endpoint (who answered):'));
      say(`   attempts beyond one per request (retries): ${retried}`);
      failed += stats.errors;
    } finally {
      await mesh.close();
    }

    say('\n7) bravo answers 503 for a while: its circuit breaker opens, fails fast, and closes again');
    backends[1]!.failing = true;
    const flaky = createMesh({
      env: {},
      services: {
        flaky: {
          endpoints: `127.0.0.1:${backends[1]!.port}`,
          retry: false,
          circuitBreaker: { volumeThreshold: 10, errorThresholdPercentage: 50, resetTimeout: '1s' },
        },
      },
    });
    try {
      const transitions: string[] = [];
      let resolveClosed: () => void = () => undefined;
      const closedAgain = new Promise<void>((r) => {
        resolveClosed = r;
      });
      const t0 = performance.now();
      flaky.onEvent((e) => {
        if (e.type !== 'circuit_breaker') return;
        transitions.push(`${e.state} at +${Math.round(performance.now() - t0)} ms`);
        say(`   event: circuit breaker for "${e.service}" is ${e.state}`);
        if (e.state === 'closed') resolveClosed();
      });
      const counts = { ok: 0, status503: 0, circuitOpen: 0, other: 0 };
      const one = async (): Promise<void> => {
        try {
          const res = await flaky.request('http://flaky/');
          await res.body.text();
          if (res.statusCode === 200) counts.ok++;
          else counts.status503++;
        } catch (error) {
          if (MeshError.is(error, 'MESH_CIRCUIT_OPEN')) counts.circuitOpen++;
          else counts.other++;
        }
      };
      for (let i = 0; i < 40; i++) await one();
      say(
        `   while failing: ${counts.status503} × 503 from bravo, ${counts.circuitOpen} × MESH_CIRCUIT_OPEN without a network call`,
      );
      backends[1]!.failing = false;
      say('   bravo recovers; after the 1 s reset timeout a trial call is let through…');
      const before = { ...counts };
      // Keep calling (each open-circuit call fails fast) until the trial closes the breaker.
      let stop = false;
      const driver = (async () => {
        for (let i = 0; i < 5_000 && !stop; i++) {
          await one();
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      await closedAgain;
      stop = true;
      await driver;
      for (let i = 0; i < 20; i++) await one();
      say(
        `   after recovery: ${counts.ok - before.ok} × 200; breaker transitions: ${transitions.join(' → ')}`,
      );
      if (counts.other > 0) failed += counts.other;
    } finally {
      await flaky.close();
    }
  } finally {
    await Promise.all(backends.map((b) => b.close()));
  }
  return failed;
}

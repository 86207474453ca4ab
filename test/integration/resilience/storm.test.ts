import { VirtualClock } from '@proxyless/core/testing';
import { createMesh, type Mesh, MeshError } from 'proxyless';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

/** Backends answering 503 while `state.failing`, else 200. */
async function stormBackends(state: { failing: boolean }): Promise<TestServer[]> {
  return Promise.all(
    ['a', 'b', 'c'].map((n) =>
      startServer(n, (req, res, s) => {
        req.resume();
        req.on('end', () => {
          res.writeHead(state.failing ? 503 : 200, { 'x-served-by': s.name });
          res.end(state.failing ? 'overloaded' : s.name);
        });
      }),
    ),
  );
}

const total = (servers: TestServer[]) => servers.reduce((n, s) => n + s.requests, 0);

describe('resilience over real backends: a 503 storm', () => {
  let mesh: Mesh | undefined;
  let servers: TestServer[] = [];
  afterEach(async () => {
    await mesh?.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  it('the retry budget caps amplification at 1 + ratio (vs 1 + maxRetries without it)', async () => {
    const state = { failing: true };
    servers = await stormBackends(state);
    const endpoints = servers.map((s) => s.address).join(',');
    // Virtual time: backoff 0, and the budget window never slides during the run.
    const clock = new VirtualClock();
    mesh = createMesh({
      env: {},
      clock,
      services: {
        budgeted: {
          endpoints,
          circuitBreaker: false,
          retry: {
            maxRetries: 3,
            retryOn: ['5xx'],
            backoff: { base: 0, max: 0 },
            budget: { ratio: 0.2, minPerSecond: 0 },
          },
        },
        unbudgeted: {
          endpoints,
          circuitBreaker: false,
          retry: {
            maxRetries: 3,
            retryOn: ['5xx'],
            backoff: { base: 0, max: 0 },
            budget: { ratio: 1, minPerSecond: 1000 },
          },
        },
      },
    });
    const N = 200;
    for (let i = 0; i < N; i++) {
      const res = await mesh.request('http://budgeted/x');
      expect(res.statusCode).toBe(503); // the last real answer, not a generic error
      expect(await res.body.text()).toBe('overloaded');
    }
    const budgeted = total(servers) / N;
    for (let i = 0; i < N; i++) await (await mesh.request('http://unbudgeted/x')).body.dump();
    const unbudgeted = total(servers) / N - budgeted;
    expect(budgeted).toBeLessThanOrEqual(1.2 + 1 / N);
    expect(budgeted).toBeGreaterThan(1.15);
    expect(unbudgeted).toBe(4);
    console.info(
      `[resilience] 503 storm amplification: budget 0.2 → ${budgeted.toFixed(3)}x, no budget → ${unbudgeted}x`,
    );
  });

  it('the breaker opens during the storm, fails fast, then half-opens and closes after recovery', async () => {
    const state = { failing: true };
    servers = await stormBackends(state);
    const clock = new VirtualClock();
    mesh = createMesh({
      env: {},
      clock,
      services: {
        api: {
          endpoints: servers.map((s) => s.address).join(','),
          retry: { maxRetries: 1, retryOn: ['5xx'], backoff: { base: 0, max: 0 } },
          circuitBreaker: { volumeThreshold: 10, errorThresholdPercentage: 50, resetTimeout: '1s' },
        },
      },
    });
    const outcomes: Array<number | string> = [];
    const call = async () => {
      try {
        const res = await mesh!.request('http://api/x');
        await res.body.dump();
        outcomes.push(res.statusCode);
      } catch (e) {
        outcomes.push(MeshError.is(e) ? e.code : 'error');
      }
    };
    for (let i = 0; i < 30; i++) await call();
    const reached = total(servers);
    expect(reached).toBeLessThanOrEqual(10);
    expect(outcomes.slice(-10)).toEqual(Array(10).fill('MESH_CIRCUIT_OPEN'));
    expect(mesh!.stats('api')?.circuitBreaker).toBe('open');

    // Open: no traffic reaches the backends, even after they recover, until resetTimeout.
    state.failing = false;
    for (let i = 0; i < 5; i++) await call();
    expect(total(servers)).toBe(reached);
    await clock.advance(1000);
    expect(mesh!.stats('api')?.circuitBreaker).toBe('half-open');

    // Half-open: one trial call succeeds and closes the breaker; traffic flows again.
    outcomes.length = 0;
    for (let i = 0; i < 10; i++) await call();
    expect(outcomes).toEqual(Array(10).fill(200));
    expect(total(servers)).toBe(reached + 10);
    expect(mesh!.stats('api')?.circuitBreaker).toBe('closed');
  });
});

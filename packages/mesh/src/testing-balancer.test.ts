/**
 * `testBalancer` of `proxyless/testing`: a service's load balancing and outlier detection tested
 * alone, on virtual time, with only `proxyless` installed (before, neither could be reached from
 * the package: `runPolicy` validates the balancer sections and then ignores them).
 */
import { MeshError } from 'proxyless';
import { testBalancer, testContext, VirtualClock } from 'proxyless/testing';
import { describe, expect, it } from 'vitest';

describe('testBalancer', () => {
  it('docs/testing-policies.md: ejection and readmission on virtual time', async () => {
    const clock = new VirtualClock();
    const t = testBalancer(
      { outlierDetection: { consecutive5xx: 2, baseEjectionTime: '30s', maxEjectionPercent: 50 } },
      '10.0.0.1:80,10.0.0.2:80',
      { clock },
    );
    const [a, b] = [t.endpoints[0]!, t.endpoints[1]!];
    t.attempt(a, { status: 503, latencyMs: 1 });
    t.attempt(a, { status: 503, latencyMs: 1 });
    expect(t.events.filter((e) => e.type === 'eject')).toHaveLength(1);
    expect(t.pick().id).toBe(b.id); // ejected: every pick goes to the other endpoint
    await clock.advance(30_000); // base ejection time × 1
    expect(t.events.at(-1)?.type).toBe('readmit');
    t.close();
  });

  it('ejects after consecutive 5xx and readmits after the ejection time, on virtual time', async () => {
    const clock = new VirtualClock();
    const t = testBalancer(
      {
        outlierDetection: {
          consecutive5xx: 2,
          baseEjectionTime: '30s',
          interval: '10s',
          maxEjectionPercent: 50,
        },
      },
      '10.0.0.1:80,10.0.0.2:80',
      { clock },
    );
    const [a, b] = [t.endpoints[0]!, t.endpoints[1]!];
    t.attempt(a, { status: 503, latencyMs: 1 });
    expect(t.events.filter((e) => e.type === 'eject')).toHaveLength(0);
    t.attempt(a, { status: 503, latencyMs: 1 });
    expect(t.events.filter((e) => e.type === 'eject')).toEqual([
      expect.objectContaining({ type: 'eject', endpoint: a.id, durationMs: 30_000 }),
    ]);
    for (let i = 0; i < 20; i++) expect(t.pick().id).toBe(b.id);
    await clock.advance(29_999);
    expect(t.events.map((e) => e.type)).not.toContain('readmit');
    await clock.advance(1);
    expect(t.events.map((e) => e.type)).toContain('readmit');
    expect(new Set(Array.from({ length: 40 }, () => t.pick().id))).toEqual(new Set([a.id, b.id]));
    t.close();
  });

  it('least_request prefers the endpoint with fewer attempts in flight', () => {
    const t = testBalancer(
      { loadBalancer: { policy: 'least_request', choiceCount: 2 } },
      '10.0.0.1:80,10.0.0.2:80',
    );
    const [a, b] = t.endpoints as [(typeof t.endpoints)[0], (typeof t.endpoints)[0]];
    // Three attempts open on `a`: two choices always include `b` when both are drawn.
    for (let i = 0; i < 3; i++) t.balancer.onAttemptStart(a);
    const picks = Array.from({ length: 50 }, () => t.pick(testContext()).id);
    expect(picks.every((id) => id === b.id || id === a.id)).toBe(true);
    expect(picks.filter((id) => id === b.id).length).toBeGreaterThan(
      picks.filter((id) => id === a.id).length,
    );
    expect(t.balancer.stats().endpoints.find((e) => e.id === a.id)?.inflight).toBe(3);
    t.close();
  });

  it('the same seed picks the same endpoints', () => {
    const run = () => {
      const t = testBalancer({ loadBalancer: { policy: 'random' } }, '10.0.0.1:80,10.0.0.2:80,10.0.0.3:80');
      const ids = Array.from({ length: 30 }, () => t.pick().id);
      t.close();
      return ids;
    };
    expect(run()).toEqual(run());
  });

  it('refuses a bad section as createMesh does, naming the field', () => {
    let error: unknown;
    try {
      testBalancer({ loadBalancer: { policy: 'leest_request' as 'least_request' } }, '10.0.0.1:80');
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    expect((error as MeshError).message).toContain('loadBalancer.policy');
  });

  it.each([
    [
      'a misspelt section',
      { outlierDetecton: { consecutive5xx: 1 } },
      {},
      'policy.outlierDetecton',
      'outlierDetection',
    ],
    ['a misspelt option', {}, { clok: new VirtualClock() }, 'options.clok', 'clock'],
  ])(
    'refuses %s, naming it with the nearest valid name (it was ignored)',
    (_what, entry, options, field, meant) => {
      let error: unknown;
      try {
        testBalancer(entry as never, '10.0.0.1:80,10.0.0.2:80', options as never);
      } catch (e) {
        error = e;
      }
      expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
      const issue = (error as MeshError).details.issues?.find((i) => i.field === field);
      expect(issue?.expected).toContain(meant);
    },
  );

  it('health checks run through a probe the test gives, never a socket (probe29)', async () => {
    const clock = new VirtualClock();
    const probed: string[] = [];
    const sick = new Set(['10.0.0.2:80']);
    const t = testBalancer(
      { healthCheck: { path: '/healthz', interval: '5s', unhealthyThreshold: 1 } },
      '10.0.0.1:80,10.0.0.2:80',
      {
        clock,
        probe: (endpoint, path) => {
          probed.push(`${endpoint.id}${path}`);
          return Promise.resolve(!sick.has(endpoint.id));
        },
      },
    );
    await clock.advance(5_000);
    await expect.poll(() => probed.length).toBeGreaterThanOrEqual(2);
    expect(probed).toEqual(expect.arrayContaining(['10.0.0.1:80/healthz', '10.0.0.2:80/healthz']));
    await expect
      .poll(() => t.events.some((e) => e.type === 'health_check' && e.healthy === false))
      .toBe(true);
    for (let i = 0; i < 10; i++) expect(t.pick().id).toBe('10.0.0.1:80');
    t.close();
  });

  it('a reconnect after a connect failure runs through connectProbe (default: it connects), on virtual time', async () => {
    const clock = new VirtualClock();
    const dials: string[] = [];
    const t = testBalancer({}, '10.0.0.1:80,10.0.0.2:80', {
      clock,
      connectProbe: (endpoint) => {
        dials.push(endpoint.id);
        return Promise.resolve();
      },
    });
    const a = t.endpoints[0]!;
    t.attempt(a, { failure: 'connect', latencyMs: 1 });
    for (let i = 0; i < 6; i++) expect(t.pick().id).toBe('10.0.0.2:80'); // unreachable: never picked
    await clock.advance(1_000); // the first reconnect attempt (gRPC's backoff: 1 s)
    await expect.poll(() => dials).toEqual(['10.0.0.1:80']);
    await expect.poll(() => new Set(Array.from({ length: 8 }, () => t.pick().id)).size).toBe(2);
    t.close();
  });

  it('takes endpoints as a list of strings too, naming a bad one by its index', () => {
    const t = testBalancer({}, ['10.0.0.1:80', '10.0.0.2:81=3']);
    expect(t.endpoints.map((e) => [e.id, e.weight])).toEqual([
      ['10.0.0.1:80', 1],
      ['10.0.0.2:81', 3],
    ]);
    t.close();
    expect(() => testBalancer({}, ['10.0.0.1:80', 'nope'])).toThrow(/endpoints\[1\]/);
  });

  it('start() keeps an attempt in flight until it ends (what least_request counts)', () => {
    const t = testBalancer(
      { loadBalancer: { policy: 'least_request', choiceCount: 2 } },
      '10.0.0.1:80,10.0.0.2:80',
    );
    const [a, b] = [t.endpoints[0]!, t.endpoints[1]!];
    const inflight = () => t.balancer.stats().endpoints.find((e) => e.id === a.id)?.inflight;
    const ends = [t.start(a), t.start(a), t.start(a)];
    expect(inflight()).toBe(3);
    const picks = Array.from({ length: 50 }, () => t.pick().id);
    expect(picks.filter((id) => id === b.id).length).toBeGreaterThan(
      picks.filter((id) => id === a.id).length,
    );
    for (const end of ends) end({ status: 200, latencyMs: 3 });
    ends[0]!({ status: 200, latencyMs: 3 }); // ending twice counts once
    expect(inflight()).toBe(0);
    t.close();
  });
});

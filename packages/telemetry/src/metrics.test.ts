import { createEndpoint, createEndpointSet } from '@proxyless/core';
import { VirtualClock } from '@proxyless/core/testing';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { OTEL_DURATION_BUCKETS } from './config.js';
import { createMeshMetrics } from './metrics.js';

async function values(
  registry: Registry,
  name: string,
): Promise<Array<{ labels: Record<string, unknown>; value: number; metricName?: string }>> {
  const m = registry.getSingleMetric(name);
  if (!m) throw new Error(`no metric ${name}`);
  return (await m.get()).values as never;
}

function setOf(
  service: string,
  n: number,
  extra: { stale?: boolean; staleSince?: number; critical?: number } = {},
) {
  const endpoints = Array.from({ length: n }, (_, i) =>
    createEndpoint({
      address: '10.0.0.1',
      port: 8000 + i,
      health: i < (extra.critical ?? 0) ? 'critical' : 'passing',
    }),
  );
  return createEndpointSet({
    service,
    version: 1,
    endpoints,
    source: 'static',
    updatedAt: 0,
    ...(extra.stale ? { stale: true, staleSince: extra.staleSince ?? 0 } : {}),
  });
}

describe('createMeshMetrics', () => {
  it('records the client duration histogram with the OTel buckets and semconv labels', async () => {
    const registry = new Registry();
    const m = createMeshMetrics({ registry });
    m.recordClientRequest('payments', 'GET', 200, '', 0.003);
    m.recordClientRequest('payments', 'GET', 200, '', 0.02);
    m.recordClientRequest('payments', 'GET', 200, '', 0.02);
    m.recordClientRequest('payments', 'POST', undefined, 'MESH_TIMEOUT', 1.2);
    const v = await values(registry, 'http_client_request_duration_seconds');
    const get200 = (suffix: string, le?: number) =>
      v.find(
        (x) =>
          x.metricName === `http_client_request_duration_seconds${suffix}` &&
          x.labels.http_response_status_code === '200' &&
          (le === undefined || x.labels.le === le),
      )?.value;
    expect(get200('_count')).toBe(3);
    expect(get200('_sum')).toBeCloseTo(0.043, 9);
    expect(get200('_bucket', 0.005)).toBe(1);
    expect(get200('_bucket', 0.01)).toBe(1);
    expect(get200('_bucket', 0.025)).toBe(3);
    const les = v
      .filter((x) => x.metricName?.endsWith('_bucket') && x.labels.http_response_status_code === '200')
      .map((x) => x.labels.le);
    expect(les).toEqual([...OTEL_DURATION_BUCKETS, '+Inf']);
    const failed = v.find((x) => x.metricName?.endsWith('_count') && x.labels.error_type === 'MESH_TIMEOUT');
    expect(failed?.labels).toEqual({
      http_request_method: 'POST',
      http_response_status_code: '',
      server_address: 'payments',
      error_type: 'MESH_TIMEOUT',
    });
    expect(failed?.value).toBe(1);
  });

  it('bounds methods to the semconv set and statuses to valid codes', async () => {
    const registry = new Registry();
    const m = createMeshMetrics({ registry });
    m.recordClientRequest('a', 'FOO', 999, '', 0.1);
    m.recordClientRequest('a', 'get', 200, '', 0.1);
    const v = await values(registry, 'http_client_request_duration_seconds');
    const counts = v.filter((x) => x.metricName?.endsWith('_count'));
    // Methods are case-sensitive in semconv: `get` is not `GET`.
    expect(
      counts.map((x) => [x.labels.http_request_method, x.labels.http_response_status_code, x.value]),
    ).toEqual([
      ['_OTHER', '', 1],
      ['_OTHER', '200', 1],
    ]);
  });

  it('counts attempts per endpoint and outcome, retries by reason and budget exhaustion', async () => {
    const registry = new Registry();
    const m = createMeshMetrics({ registry });
    m.recordAttempt('payments', '10.0.0.1:80', 'success');
    m.recordAttempt('payments', '10.0.0.1:80', 'success');
    m.recordAttempt('payments', '10.0.0.2:80', '5xx');
    m.recordCallEvent('payments', { type: 'retry', at: 0, attempt: 1, reason: '5xx' });
    m.recordCallEvent('payments', { type: 'retry', at: 0, attempt: 2, reason: 'reset' });
    m.recordCallEvent('payments', { type: 'retry', at: 0, attempt: 3, reason: '5xx' });
    m.recordCallEvent('payments', { type: 'give_up', at: 0, attempt: 4, reason: 'budget_exhausted (5xx)' });
    m.recordCallEvent('payments', { type: 'give_up', at: 0, attempt: 4, reason: 'max_retries (5xx)' });
    expect(
      (await values(registry, 'mesh_attempts_total')).map((x) => [
        x.labels.endpoint,
        x.labels.outcome,
        x.value,
      ]),
    ).toEqual([
      ['10.0.0.1:80', 'success', 2],
      ['10.0.0.2:80', '5xx', 1],
    ]);
    expect((await values(registry, 'mesh_retries_total')).map((x) => [x.labels.reason, x.value])).toEqual([
      ['5xx', 2],
      ['reset', 1],
    ]);
    expect((await values(registry, 'mesh_retry_budget_exhausted_total')).map((x) => x.value)).toEqual([1]);
  });

  it('counts an endpoint failing its active health check unhealthy and one that cannot connect unreachable', async () => {
    const registry = new Registry();
    const m = createMeshMetrics({ registry });
    m.onMeshEvent({ type: 'endpoints_changed', service: 'payments', set: setOf('payments', 3) });
    const byState = async () =>
      Object.fromEntries((await values(registry, 'mesh_endpoints')).map((x) => [x.labels.state, x.value]));
    const balancer = (event: Record<string, unknown>) =>
      m.onMeshEvent({ type: 'balancer', service: 'payments', event: event as { type: string } });
    balancer({ type: 'health_check', endpoint: '10.0.0.1:8000', healthy: false });
    balancer({
      type: 'connectivity',
      endpoint: '10.0.0.1:8001',
      from: 'CONNECTING',
      to: 'TRANSIENT_FAILURE',
    });
    expect(await byState()).toEqual({ healthy: 1, degraded: 0, unhealthy: 1, unreachable: 1, ejected: 0 });
    // A reconnect probe's CONNECTING does not make it reachable; a connection does.
    balancer({
      type: 'connectivity',
      endpoint: '10.0.0.1:8001',
      from: 'TRANSIENT_FAILURE',
      to: 'CONNECTING',
    });
    expect((await byState()).unreachable).toBe(1);
    balancer({ type: 'connectivity', endpoint: '10.0.0.1:8001', from: 'CONNECTING', to: 'READY' });
    balancer({ type: 'health_check', endpoint: '10.0.0.1:8000', healthy: true });
    expect(await byState()).toEqual({ healthy: 3, degraded: 0, unhealthy: 0, unreachable: 0, ejected: 0 });
    // A new balancer (config change): its view replaces what the previous one's events left.
    balancer({ type: 'health_check', endpoint: '10.0.0.1:8002', healthy: false });
    m.onDestination('payments', {
      panic: false,
      endpoints: [
        { id: '10.0.0.1:8000', address: '10.0.0.1', port: 8000, health: 'passing', ejected: true },
        { id: '10.0.0.1:8001', address: '10.0.0.1', port: 8001, health: 'passing', ejected: false },
        { id: '10.0.0.1:8002', address: '10.0.0.1', port: 8002, health: 'passing', ejected: false },
      ],
    });
    expect(await byState()).toEqual({ healthy: 2, degraded: 0, unhealthy: 0, unreachable: 0, ejected: 1 });
  });

  it('has breaker and panic series from the destination’s build, and none for a breaker turned off', async () => {
    const registry = new Registry();
    const m = createMeshMetrics({ registry });
    const view = (circuitBreaker?: 'closed' | 'open') => ({
      panic: false,
      endpoints: [],
      ...(circuitBreaker ? { circuitBreaker } : {}),
    });
    m.onDestination('payments', view('closed'));
    const breaker = async () =>
      Object.fromEntries(
        (await values(registry, 'mesh_circuit_breaker_state')).map((x) => [x.labels.state, x.value]),
      );
    expect(await breaker()).toEqual({ closed: 1, open: 0, 'half-open': 0 });
    expect((await values(registry, 'mesh_panic_mode')).map((x) => x.value)).toEqual([0]);
    // Not yet resolved: no endpoint series.
    expect(await values(registry, 'mesh_endpoints')).toEqual([]);
    m.onDestination('payments', view());
    expect(await breaker()).toEqual({});
    expect((await values(registry, 'mesh_panic_mode')).map((x) => x.value)).toEqual([0]);
  });

  it('keeps a routing subset’s breaker and panic series under `target`, apart from the service’s, until it is released', async () => {
    const registry = new Registry();
    const m = createMeshMetrics({ registry });
    const v2 = 'v2.web.default.default.dc1';
    m.onDestination('web', { panic: false, endpoints: [], circuitBreaker: 'closed' });
    m.onDestination('web', { panic: false, endpoints: [], circuitBreaker: 'closed' }, v2);
    m.onMeshEvent({ type: 'circuit_breaker', service: 'web', state: 'open', target: v2 });
    m.onMeshEvent({
      type: 'balancer',
      service: 'web',
      target: v2,
      event: { type: 'panic_enter' },
    });
    const series = async (name: string) =>
      (await values(registry, name))
        .filter((x) => x.value === 1 || name === 'mesh_panic_mode')
        .map((x) => `${x.labels.target ?? '-'} ${x.labels.state ?? ''}=${x.value}`)
        .sort();
    expect(await series('mesh_circuit_breaker_state')).toEqual(['- closed=1', `${v2} open=1`]);
    expect(await series('mesh_panic_mode')).toEqual(['- =0', `${v2} =1`]);
    m.forgetTarget('web', v2);
    expect(await series('mesh_circuit_breaker_state')).toEqual(['- closed=1']);
    expect(await series('mesh_panic_mode')).toEqual(['- =0']);
    // A removed service takes its subsets' series with it.
    m.onMeshEvent({ type: 'circuit_breaker', service: 'web', state: 'half-open', target: v2 });
    m.onMeshEvent({ type: 'service_removed', service: 'web' });
    expect(await values(registry, 'mesh_circuit_breaker_state')).toEqual([]);
    expect(await values(registry, 'mesh_panic_mode')).toEqual([]);
  });

  it('describes mesh_resolver_staleness_seconds as how long the set has been stale', async () => {
    const registry = new Registry();
    createMeshMetrics({ registry });
    const text = await registry.getSingleMetricAsString('mesh_resolver_staleness_seconds');
    expect(text).toContain(
      '# HELP mesh_resolver_staleness_seconds Seconds the endpoint set has been stale (last known good, registry unreachable); 0 when fresh.',
    );
  });

  it('tracks endpoints by state, ejections, breaker state, panic, staleness and config version', async () => {
    const registry = new Registry();
    const clock = new VirtualClock();
    const m = createMeshMetrics({ registry, clock });
    m.onMeshEvent({
      type: 'endpoints_changed',
      service: 'payments',
      set: setOf('payments', 4, { critical: 1 }),
    });
    m.onMeshEvent({
      type: 'balancer',
      service: 'payments',
      event: { type: 'eject', endpoint: '10.0.0.1:8003', reason: 'consecutive_5xx', durationMs: 30_000 },
    });
    m.onMeshEvent({ type: 'balancer', service: 'payments', event: { type: 'panic_enter' } });
    m.onMeshEvent({ type: 'circuit_breaker', service: 'payments', state: 'open' });
    m.onMeshEvent({ type: 'config_applied', version: 7 });
    m.onMeshEvent({ type: 'config_rejected', error: { code: 'MESH_CONFIG_INVALID' } });
    const byState = async () =>
      Object.fromEntries((await values(registry, 'mesh_endpoints')).map((x) => [x.labels.state, x.value]));
    expect(await byState()).toEqual({ healthy: 2, degraded: 0, unhealthy: 1, unreachable: 0, ejected: 1 });
    expect((await values(registry, 'mesh_ejections_total')).map((x) => [x.labels.reason, x.value])).toEqual([
      ['consecutive_5xx', 1],
    ]);
    expect(
      Object.fromEntries(
        (await values(registry, 'mesh_circuit_breaker_state')).map((x) => [x.labels.state, x.value]),
      ),
    ).toEqual({ closed: 0, open: 1, 'half-open': 0 });
    expect((await values(registry, 'mesh_panic_mode'))[0]?.value).toBe(1);
    expect((await values(registry, 'mesh_config_version'))[0]?.value).toBe(7);
    expect((await values(registry, 'mesh_config_rejected_total'))[0]?.value).toBe(1);

    m.onMeshEvent({
      type: 'balancer',
      service: 'payments',
      event: { type: 'readmit', endpoint: '10.0.0.1:8003' },
    });
    expect(await byState()).toEqual({ healthy: 3, degraded: 0, unhealthy: 1, unreachable: 0, ejected: 0 });

    // Registry down at t=1000; scraped at t=46000: stale for 45 s.
    await clock.advance(1000);
    m.onMeshEvent({
      type: 'endpoints_changed',
      service: 'payments',
      set: setOf('payments', 4, { stale: true, staleSince: 1000 }),
    });
    await clock.advance(45_000);
    expect((await values(registry, 'mesh_resolver_stale'))[0]?.value).toBe(1);
    expect((await values(registry, 'mesh_resolver_staleness_seconds'))[0]?.value).toBe(45);
    m.onMeshEvent({ type: 'endpoints_changed', service: 'payments', set: setOf('payments', 4) });
    expect((await values(registry, 'mesh_resolver_staleness_seconds'))[0]?.value).toBe(0);

    m.onMeshEvent({ type: 'service_removed', service: 'payments' });
    expect(await values(registry, 'mesh_endpoints')).toEqual([]);
  });

  it('keeps the services cap when services churn: a removed service takes its series along', async () => {
    const registry = new Registry();
    const m = createMeshMetrics({ registry, limits: { services: 3 } });
    const record = (svc: string) => {
      m.onMeshEvent({ type: 'endpoints_changed', service: svc, set: setOf(svc, 1) });
      m.recordClientRequest(svc, 'GET', 200, '', 0.01);
      m.recordAttempt(svc, '10.0.0.1:8000', 'success');
      m.recordCallEvent(svc, { type: 'retry', at: 0, attempt: 1, reason: '5xx' });
      m.recordCallEvent(svc, { type: 'give_up', at: 0, attempt: 2, reason: 'budget_exhausted (5xx)' });
      m.onMeshEvent({ type: 'balancer', service: svc, event: { type: 'eject', endpoint: 'e', reason: 'x' } });
      m.onMeshEvent({ type: 'resolver_error', service: svc, error: { code: 'ENOTFOUND' } });
    };
    for (const wave of ['a', 'b', 'c']) {
      for (let i = 0; i < 3; i++) record(`${wave}${i}`);
      for (let i = 0; i < 3; i++) m.onMeshEvent({ type: 'service_removed', service: `${wave}${i}` });
    }
    for (let i = 0; i < 3; i++) record(`d${i}`);
    const services = new Set<unknown>();
    for (const metric of await registry.getMetricsAsJSON()) {
      for (const v of metric.values) {
        const svc = v.labels.service ?? v.labels.server_address;
        if (svc !== undefined) services.add(svc);
      }
    }
    // Only the live services' series remain, each under its own name (no `_OTHER`).
    expect([...services].sort()).toEqual(['d0', 'd1', 'd2']);
    // A service that comes back records into live series, not into the removed ones' handles.
    m.onMeshEvent({ type: 'service_removed', service: 'd0' });
    m.recordClientRequest('d0', 'GET', 200, '', 0.01);
    m.recordAttempt('d0', '10.0.0.1:8000', 'success');
    const count = (await values(registry, 'http_client_request_duration_seconds')).find(
      (v) => v.metricName?.endsWith('_count') && v.labels.server_address === 'd0',
    );
    expect(count?.value).toBe(1);
    const attempts = (await values(registry, 'mesh_attempts_total')).find((v) => v.labels.service === 'd0');
    expect(attempts?.value).toBe(1);
  });

  it('a removed service held by calls in flight keeps its call series until the last hold goes', async () => {
    const registry = new Registry();
    const m = createMeshMetrics({ registry });
    const of = async (svc: string) =>
      (await registry.getMetricsAsJSON())
        .filter((metric) => metric.values.some((v) => (v.labels.service ?? v.labels.server_address) === svc))
        .map((metric) => metric.name)
        .sort();
    m.onMeshEvent({ type: 'endpoints_changed', service: 'api', set: setOf('api', 2) });
    m.recordAttempt('api', '10.0.0.1:8000', 'success');
    const first = m.holdCallSeries('api');
    const second = m.holdCallSeries('api');
    m.onMeshEvent({ type: 'service_removed', service: 'api' });
    expect(await of('api')).toEqual(['mesh_attempts_total']);
    m.recordAttempt('api', '10.0.0.1:8000', 'success');
    first();
    first(); // idempotent: the second hold still counts
    expect((await values(registry, 'mesh_attempts_total'))[0]?.value).toBe(2);
    second();
    expect(await of('api')).toEqual([]);

    // Built again while its old calls run: the series stay when they end.
    m.onMeshEvent({ type: 'endpoints_changed', service: 'api', set: setOf('api', 1) });
    const old = m.holdCallSeries('api');
    m.onMeshEvent({ type: 'service_removed', service: 'api' });
    m.onDestination('api', { endpoints: [] });
    m.recordAttempt('api', '10.0.0.1:8000', 'success');
    old();
    expect(await of('api')).toEqual(['mesh_attempts_total', 'mesh_panic_mode']);
  });

  it('drops the attempt series of endpoints that left the set and frees their slots under the cap', async () => {
    const registry = new Registry();
    const m = createMeshMetrics({ registry, limits: { endpointsPerService: 2 } });
    const set = (version: number, ports: number[]) =>
      createEndpointSet({
        service: 'pods',
        version,
        endpoints: ports.map((port) => createEndpoint({ address: '10.0.0.1', port })),
        source: 'static',
        updatedAt: 0,
      });
    const labels = async () =>
      (await values(registry, 'mesh_attempts_total')).map((v) => `${v.labels.endpoint} ${v.value}`).sort();
    // A rolling deploy: each version replaces both endpoints, past the cap of 2 in total.
    for (let gen = 0; gen < 5; gen++) {
      const ports = [8000 + 2 * gen, 8001 + 2 * gen];
      m.onMeshEvent({ type: 'endpoints_changed', service: 'pods', set: set(gen + 1, ports) });
      for (const port of ports) m.recordAttempt('pods', `10.0.0.1:${port}`, 'success');
    }
    expect(await labels()).toEqual(['10.0.0.1:8008 1', '10.0.0.1:8009 1']);

    // Routing subsets report their part of the same version: the parts add up, nothing is dropped.
    m.onMeshEvent({ type: 'endpoints_changed', service: 'pods', set: set(6, [8008]) });
    m.onMeshEvent({ type: 'endpoints_changed', service: 'pods', set: set(6, [8009]) });
    m.recordAttempt('pods', '10.0.0.1:8008', 'success');
    m.recordAttempt('pods', '10.0.0.1:8009', 'success');
    expect(await labels()).toEqual(['10.0.0.1:8008 2', '10.0.0.1:8009 2']);

    // An attempt ending after its endpoint left counts under _OTHER, never bringing it back; an
    // endpoint that comes back gets a series again (from zero); a set past the cap still overflows.
    m.onMeshEvent({ type: 'endpoints_changed', service: 'pods', set: set(7, [8000, 8009, 8010]) });
    m.recordAttempt('pods', '10.0.0.1:8008', 'error');
    m.recordAttempt('pods', '10.0.0.1:8000', 'success');
    m.recordAttempt('pods', '10.0.0.1:8010', 'success');
    m.recordAttempt('pods', '10.0.0.1:8009', 'success');
    const attempts = await values(registry, 'mesh_attempts_total');
    expect(attempts.map((v) => `${v.labels.endpoint} ${v.labels.outcome} ${v.value}`).sort()).toEqual([
      '10.0.0.1:8000 success 1',
      '10.0.0.1:8009 success 3',
      '_OTHER error 1',
      '_OTHER success 1',
    ]);
  });

  it('keeps cardinality bounded with 1,000 services and hostile label values', async () => {
    const registry = new Registry();
    const m = createMeshMetrics({
      registry,
      limits: { services: 2000, endpointsPerService: 8, reasonsPerService: 4 },
    });
    const methods = ['GET', 'POST', 'PUT', 'DELETE', 'BREW', 'get', 'X1', 'X2'];
    for (let s = 0; s < 1000; s++) {
      const svc = `svc-${s}`;
      m.onMeshEvent({ type: 'endpoints_changed', service: svc, set: setOf(svc, 3) });
      m.onMeshEvent({ type: 'circuit_breaker', service: svc, state: 'closed' });
      for (let i = 0; i < 40; i++) {
        // 40 distinct endpoints, 40 distinct retry reasons and error codes, junk methods.
        m.recordAttempt(svc, `10.${s >> 8}.${s & 255}.${i}:80`, i % 3 === 0 ? 'error' : 'success');
        m.recordCallEvent(svc, { type: 'retry', at: 0, attempt: 1, reason: `reason-${i}` });
        m.recordClientRequest(
          svc,
          methods[i % methods.length]!,
          200 + (i % 4) * 100,
          i % 2 ? `E_${i}` : '',
          0.01,
        );
      }
    }
    const count = async (name: string) =>
      (await values(registry, name)).filter(
        (x) => !x.metricName?.includes('_bucket') && !x.metricName?.endsWith('_sum'),
      ).length;
    // Per service: endpoints ≤ 8 + _OTHER, × 2 outcomes seen here.
    expect(await count('mesh_attempts_total')).toBeLessThanOrEqual(1000 * 9 * 3);
    expect(await count('mesh_retries_total')).toBe(1000 * (4 + 1));
    // Per service: ≤ 10 methods + _OTHER, 4 statuses, ≤ 4 error types + _OTHER + ''.
    const hist = await count('http_client_request_duration_seconds');
    expect(hist).toBeLessThanOrEqual(1000 * 5 * 4 * 6);
    const total = await m.seriesCount();
    // Every series is accounted for by a per-service bound: total grows linearly with services.
    expect(total).toBeLessThan(1000 * 400);

    // Past the service cap, new services share one _OTHER series set.
    const capped = new Registry();
    const c = createMeshMetrics({ registry: capped, limits: { services: 10 } });
    for (let s = 0; s < 1000; s++) c.recordAttempt(`svc-${s}`, 'e:1', 'success');
    const attempts = await values(capped, 'mesh_attempts_total');
    expect(attempts).toHaveLength(11);
    expect(attempts.find((x) => x.labels.service === '_OTHER')?.value).toBe(990);
  });

  it('counts a success under an empty error_type however many error types came first', async () => {
    const registry = new Registry();
    const m = createMeshMetrics({ registry, limits: { reasonsPerService: 4 } });
    for (let i = 0; i < 6; i++) m.recordClientRequest('pay', 'GET', 500 + i, `E_${i}`, 0.01);
    m.recordClientRequest('pay', 'GET', 200, '', 0.01);
    const counts = (await values(registry, 'http_client_request_duration_seconds')).filter((x) =>
      x.metricName?.endsWith('_count'),
    );
    const ok = counts.filter(
      (x) => x.labels.http_response_status_code === 200 || x.labels.http_response_status_code === '200',
    );
    expect(ok.map((x) => [x.labels.error_type, x.value])).toEqual([['', 1]]);
    // The errors are still bounded: 4 kept, the rest under _OTHER.
    const types = new Set(counts.map((x) => x.labels.error_type));
    expect([...types].sort()).toEqual(['', 'E_0', 'E_1', 'E_2', 'E_3', '_OTHER']);
  });

  it('reuses series already in the registry (a second mesh in one process)', async () => {
    const registry = new Registry();
    const a = createMeshMetrics({ registry });
    const b = createMeshMetrics({ registry });
    a.recordAttempt('x', 'e', 'success');
    b.recordAttempt('x', 'e', 'success');
    expect((await values(registry, 'mesh_attempts_total'))[0]?.value).toBe(2);
  });
});

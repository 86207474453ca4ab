import { Issues, MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RESILIENCE_CONFIG,
  parseResiliencePatch,
  RESILIENCE_CONFIG_KEYS,
  resilienceEnvVars,
  resiliencePatchFromEnv,
  resilienceWarnings,
  resolveResilienceConfig,
} from './config.js';
import { RETRY_ON_VALUES } from './sections/retry.js';

function parse(entry: Record<string, unknown>) {
  const issues = new Issues();
  const patch = parseResiliencePatch(entry, 'services.api', issues);
  return { patch, issues: issues.list };
}

describe('parseResiliencePatch', () => {
  it('lists exactly the documented keys', () => {
    expect(RESILIENCE_CONFIG_KEYS).toEqual([
      'timeout',
      'perTryTimeout',
      'connectTimeout',
      'retry',
      'hedge',
      'circuitBreaker',
      'concurrencyLimit',
      'rateLimit',
      'faultInjection',
    ]);
  });

  it('reads connectTimeout as milliseconds (5 s unless a layer sets it); 0 and off are errors', () => {
    expect(resolveResilienceConfig().connectTimeoutMs).toBe(5000);
    expect(parse({ connectTimeout: '750ms' }).patch).toEqual({ connectTimeoutMs: 750 });
    expect(resolveResilienceConfig(parse({ connectTimeout: '1s' }).patch!).connectTimeoutMs).toBe(1000);
    for (const bad of [0, 'off', false, '-1s', 'soon']) {
      expect(parse({ connectTimeout: bad }).issues.map((i) => i.field)).toEqual([
        'services.api.connectTimeout',
      ]);
    }
  });

  it('returns undefined when no resilience key is present', () => {
    expect(parse({ endpoints: 'a:1' }).patch).toBeUndefined();
  });

  it('reads every policy', () => {
    const { patch, issues } = parse({
      timeout: '2s',
      perTryTimeout: 500,
      retry: {
        maxRetries: 3,
        retryOn: ['5xx', 'connect-failure'],
        retriableStatusCodes: [429],
        retriableHeaders: ['X-Retry'],
        backoff: { base: '10ms', max: '1s' },
        retryAfterMax: '3s',
        allowNonIdempotent: true,
        budget: { ratio: '10%', minPerSecond: 5, window: '5s' },
      },
      hedge: { delay: { percentile: 95 }, maxHedges: 2 },
      circuitBreaker: {
        errorThresholdPercentage: 30,
        volumeThreshold: 5,
        resetTimeout: '1s',
        maxRequests: 10,
      },
      concurrencyLimit: { max: 4, queue: 2, queueTimeout: '100ms' },
      rateLimit: { rps: 50, burst: 10 },
      faultInjection: {
        delay: { percent: 10, duration: '1s' },
        abort: { percent: 5, status: 503 },
        header: 'X-Mesh-Fault',
      },
    });
    expect(issues).toEqual([]);
    const c = resolveResilienceConfig(patch!);
    expect(c.timeoutMs).toBe(2000);
    expect(c.perTryTimeoutMs).toBe(500);
    expect(c.retry).toMatchObject({
      maxRetries: 3,
      retryOn: ['5xx', 'connect-failure'],
      retriableStatusCodes: [429],
      retriableHeaders: ['x-retry'],
      backoff: { baseMs: 10, maxMs: 1000 },
      retryAfterMaxMs: 3000,
      allowNonIdempotent: true,
      budget: { ratio: 0.1, minPerSecond: 5, windowMs: 5000 },
    });
    expect(c.hedge).toEqual({ delayMs: 50, percentile: 95, maxHedges: 2 });
    expect(c.circuitBreaker).toMatchObject({
      errorThresholdPercentage: 30,
      volumeThreshold: 5,
      resetTimeoutMs: 1000,
      maxRequests: 10,
    });
    expect(c.concurrencyLimit).toEqual({ max: 4, queue: 2, queueTimeoutMs: 100 });
    expect(c.rateLimit).toEqual({ rps: 50, burst: 10 });
    expect(c.faultInjection).toEqual({
      delay: { percent: 10, durationMs: 1000 },
      abort: { percent: 5, status: 503 },
      header: 'x-mesh-fault',
    });
  });

  it('names every bad field by path and repeats the value', () => {
    const { issues } = parse({
      timeout: 'soon',
      retry: {
        maxRetries: 'three',
        retryOn: ['5xx', 'teapot'],
        backoff: { base: '1s', max: '10ms' },
        budgett: {},
      },
      hedge: { maxHedges: 0 },
      circuitBreaker: 'yes',
      rateLimit: { burst: 2 },
      concurrencyLimit: { max: 0 },
      faultInjection: { abort: { percent: 101 } },
    });
    const byField = Object.fromEntries(issues.map((i) => [i.field, i]));
    expect(byField['services.api.timeout']?.value).toBe('soon');
    expect(byField['services.api.retry.maxRetries']?.value).toBe('three');
    expect(byField['services.api.retry.retryOn[1]']?.value).toBe('teapot');
    expect(byField['services.api.retry.backoff.max']?.value).toBe('10ms');
    expect(byField['services.api.retry.budgett']?.expected).toContain('did you mean "budget"');
    expect(byField['services.api.hedge.maxHedges']?.value).toBe(0);
    expect(byField['services.api.circuitBreaker']?.value).toBe('yes');
    // `rps` may come from another layer: a rate limit without one anywhere fails when merged.
    expect(() => resolveResilienceConfig({ rateLimit: { burst: 2 } })).toThrowError(/rateLimit\.rps/);
    expect(byField['services.api.concurrencyLimit.max']?.value).toBe(0);
    expect(byField['services.api.faultInjection.abort.percent']?.value).toBe(101);
    expect(parse({ rateLimit: true }).issues[0]?.field).toBe('services.api.rateLimit');
  });

  it('suggests the closest name for an unknown nested key', () => {
    const { issues } = parse({ retry: { maxRetires: 2 } });
    expect(issues).toHaveLength(1);
    expect(issues[0]!.field).toBe('services.api.retry.maxRetires');
    expect(issues[0]!.expected).toContain('did you mean "maxRetries"');
  });

  it('accepts false to turn a policy off and true for defaults', () => {
    const { patch } = parse({ retry: false, circuitBreaker: false, hedge: true, timeout: false });
    const c = resolveResilienceConfig(patch!);
    expect(c.retry).toBeUndefined();
    expect(c.circuitBreaker).toBeUndefined();
    expect(c.hedge).toEqual({ delayMs: 50, percentile: undefined, maxHedges: 1 });
    expect(c.timeoutMs).toBe(0);
  });
});

describe('resolveResilienceConfig', () => {
  it('starts from the defaults', () => {
    expect(resolveResilienceConfig()).toEqual(DEFAULT_RESILIENCE_CONFIG);
  });

  it('merges later layers field by field', () => {
    const c = resolveResilienceConfig(
      { retry: { maxRetries: 4, backoff: { baseMs: 5 } } },
      { retry: { backoff: { maxMs: 50 } } },
      { timeoutMs: 100 },
    );
    expect(c.retry?.maxRetries).toBe(4);
    expect(c.retry?.backoff).toEqual({ baseMs: 5, maxMs: 50 });
    expect(c.retry?.retryOn).toEqual(DEFAULT_RESILIENCE_CONFIG.retry?.retryOn);
    expect(c.timeoutMs).toBe(100);
  });

  it('lets a later layer switch a policy off and on again', () => {
    expect(resolveResilienceConfig({ retry: false }).retry).toBeUndefined();
    expect(resolveResilienceConfig({ retry: false }, { retry: { maxRetries: 1 } }).retry?.maxRetries).toBe(1);
  });

  it('replaces a percentile hedge with a fixed delay', () => {
    const c = resolveResilienceConfig(
      { hedge: { percentile: 90 } },
      { hedge: { delayMs: 20, percentile: undefined } },
    );
    expect(c.hedge).toEqual({ delayMs: 20, percentile: undefined, maxHedges: 1 });
  });

  it('derives backoff.max as 10× the merged base when no layer sets it (Envoy)', () => {
    expect(resolveResilienceConfig({ retry: { backoff: { baseMs: 1000 } } }).retry?.backoff).toEqual({
      baseMs: 1000,
      maxMs: 10_000,
    });
    // The base from one layer (the environment), nothing else: the same rule.
    const env = resiliencePatchFromEnv({ MESH_RETRY_BACKOFF_BASE: '1s' })!;
    expect(resolveResilienceConfig(env).retry?.backoff).toEqual({ baseMs: 1000, maxMs: 10_000 });
    // Unchanged defaults: 25 ms → 250 ms.
    expect(resolveResilienceConfig({ retry: { maxRetries: 1 } }).retry?.backoff).toEqual({
      baseMs: 25,
      maxMs: 250,
    });
    // A max set before `retry: false` is gone with it.
    const off = resolveResilienceConfig(
      { retry: { backoff: { maxMs: 100 } } },
      { retry: false },
      { retry: { backoff: { baseMs: 50 } } },
    );
    expect(off.retry?.backoff).toEqual({ baseMs: 50, maxMs: 500 });
  });

  it('keeps a backoff.max some layer sets, and rejects one below the merged base', () => {
    const c = resolveResilienceConfig(
      { retry: { backoff: { maxMs: 2000 } } },
      { retry: { backoff: { baseMs: 100 } } },
    );
    expect(c.retry?.backoff).toEqual({ baseMs: 100, maxMs: 2000 });
    const bad = () =>
      resolveResilienceConfig(
        { retry: { backoff: { maxMs: 100 } } },
        { retry: { backoff: { baseMs: 500 } } },
      );
    expect(bad).toThrow(
      expect.objectContaining({
        code: 'MESH_CONFIG_INVALID',
        message: expect.stringMatching(
          /retry\.backoff\.max: expected a duration ≥ retry\.backoff\.base \(500ms\), got "100ms"/,
        ),
      }),
    );
  });

  it('defaults the rate-limit burst to rps', () => {
    expect(resolveResilienceConfig({ rateLimit: { rps: 7.5 } }).rateLimit).toEqual({ rps: 7.5, burst: 8 });
  });
});

describe('resiliencePatchFromEnv', () => {
  it('is undefined when nothing is set, blank counts as unset', () => {
    expect(resiliencePatchFromEnv({})).toBeUndefined();
    expect(resiliencePatchFromEnv({ MESH_TIMEOUT: '  ', MESH_RETRIES: '' })).toBeUndefined();
  });

  it('reads the variables', () => {
    const p = resiliencePatchFromEnv({
      MESH_TIMEOUT: '3s',
      MESH_PER_TRY_TIMEOUT: '250ms',
      MESH_RETRIES: '4',
      MESH_RETRY_ON: '5xx, connect-failure',
      MESH_RETRY_STATUS_CODES: '429,409',
      MESH_RETRY_BUDGET: '25%',
      MESH_RETRY_BACKOFF_BASE: '5ms',
      MESH_HEDGE_DELAY: 'p99',
      MESH_CIRCUIT_BREAKER: 'off',
      MESH_CONCURRENCY_LIMIT: '8',
      MESH_RATE_LIMIT: '100',
      MESH_RATE_LIMIT_BURST: '20',
    });
    const c = resolveResilienceConfig(p!);
    expect(c.timeoutMs).toBe(3000);
    expect(c.perTryTimeoutMs).toBe(250);
    expect(c.retry).toMatchObject({
      maxRetries: 4,
      retryOn: ['5xx', 'connect-failure'],
      retriableStatusCodes: [429, 409],
      backoff: { baseMs: 5, maxMs: 50 }, // max unset: 10× base
      budget: { ratio: 0.25, minPerSecond: 10, windowMs: 10_000 },
    });
    expect(c.hedge?.percentile).toBe(99);
    expect(c.circuitBreaker).toBeUndefined();
    expect(c.concurrencyLimit?.max).toBe(8);
    expect(c.rateLimit).toEqual({ rps: 100, burst: 20 });
  });

  it('MESH_TIMEOUT=off removes the overall timeout', () => {
    expect(resolveResilienceConfig(resiliencePatchFromEnv({ MESH_TIMEOUT: 'off' })!).timeoutMs).toBe(0);
  });

  it('lists every bad variable at once, naming it and repeating the value', () => {
    let error: unknown;
    try {
      resiliencePatchFromEnv({
        MESH_TIMEOUT: 'soon',
        MESH_PER_TRY_TIMEOUT: '-5ms',
        MESH_RETRIES: 'three',
        MESH_RETRY_ON: '5xx,teapot',
        MESH_RETRY_BUDGET: '2',
        MESH_HEDGE_DELAY: 'p0',
      });
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    const e = error as MeshError;
    const issues = e.details.issues ?? [];
    expect(issues.map((i) => [i.field, i.value])).toEqual([
      ['MESH_TIMEOUT', 'soon'],
      ['MESH_PER_TRY_TIMEOUT', '-5ms'],
      ['MESH_RETRIES', 'three'],
      ['MESH_RETRY_ON', '5xx,teapot'],
      ['MESH_RETRY_BUDGET', '2'],
      ['MESH_HEDGE_DELAY', 'p0'],
    ]);
    expect(e.message).toContain('MESH_TIMEOUT: expected');
    expect(e.message).toContain('"soon"');
    expect(e.message).toContain('"teapot"');
  });

  it('explains a bad MESH_RETRY_ON with the conditions it takes, once per problem (probe25 config defect 5)', () => {
    const problems = (value: string) => {
      try {
        resiliencePatchFromEnv({ MESH_RETRY_ON: value });
      } catch (e) {
        if (MeshError.is(e, 'MESH_CONFIG_INVALID')) return e.details.issues ?? [];
        throw e;
      }
      return [];
    };
    const [bad, ...more] = problems('5xx,teapot');
    expect(more).toEqual([]);
    for (const condition of RETRY_ON_VALUES) expect(bad?.expected).toContain(condition);
    expect(bad?.expected).toContain('"teapot" is not');
    // Two empty items, one problem.
    expect(problems(',')).toHaveLength(1);
    expect(problems(',,')).toHaveLength(1);
  });

  it('documents every variable it reads', () => {
    const names = resilienceEnvVars.map((v) => v.name);
    const src = resiliencePatchFromEnv.toString();
    for (const m of src.matchAll(/'(MESH_[A-Z_]+)'/g)) expect(names).toContain(m[1]);
    for (const v of resilienceEnvVars) expect(v.description.length).toBeGreaterThan(10);
  });
});

describe('circuitBreaker.maxConnections', () => {
  it('is an integer ≥ 1, named with its value when it is not', () => {
    const issues = new Issues();
    parseResiliencePatch({ circuitBreaker: { maxConnections: 0 } }, 'services.api', issues);
    expect(issues.list).toEqual([
      expect.objectContaining({ field: 'services.api.circuitBreaker.maxConnections', value: 0 }),
    ]);
    const ok = new Issues();
    const patch = parseResiliencePatch({ circuitBreaker: { maxConnections: 8 } }, 'services.api', ok);
    expect(ok.list).toEqual([]);
    expect(resolveResilienceConfig(patch!).circuitBreaker?.maxConnections).toBe(8);
  });
});

describe('sections as schema declarations (#10)', () => {
  it('default: no overall timeout, unbounded concurrent retries (Istio)', () => {
    const c = resolveResilienceConfig();
    expect(c.timeoutMs).toBe(0);
    expect(c.circuitBreaker?.maxRetries).toBe(4_294_967_295);
  });

  it('true means the defaults where a section has them, and is an error where it has none', () => {
    for (const key of ['retry', 'hedge', 'circuitBreaker', 'concurrencyLimit']) {
      expect(parse({ [key]: true }).issues).toEqual([]);
    }
    for (const key of ['rateLimit', 'faultInjection', 'timeout', 'perTryTimeout']) {
      expect(parse({ [key]: true }).issues.map((i) => i.field)).toEqual([`services.api.${key}`]);
    }
  });

  it('maxPendingRequests needs the queue it bounds: one owner per setting', () => {
    expect(() => resolveResilienceConfig({ circuitBreaker: { maxPendingRequests: 5 } })).toThrowError(
      /circuitBreaker\.maxPendingRequests/,
    );
    const c = resolveResilienceConfig({
      circuitBreaker: { maxPendingRequests: 5 },
      concurrencyLimit: { max: 2, queue: 10 },
    });
    expect(c.circuitBreaker?.maxPendingRequests).toBe(5);
  });

  it('rejects maxPendingRequests over a concurrencyLimit without a queue: it could never apply', () => {
    const bad = () =>
      resolveResilienceConfig(
        { concurrencyLimit: { max: 5 } },
        { circuitBreaker: { maxPendingRequests: 10 } },
      );
    expect(bad).toThrow(
      expect.objectContaining({
        code: 'MESH_CONFIG_INVALID',
        message: expect.stringMatching(/circuitBreaker\.maxPendingRequests: .*concurrencyLimit\.queue/),
      }),
    );
    // A later layer giving the limit a queue makes it valid.
    const c = resolveResilienceConfig(
      { concurrencyLimit: { max: 5 } },
      { circuitBreaker: { maxPendingRequests: 10 } },
      { concurrencyLimit: { queue: 4 } },
    );
    expect(c.circuitBreaker?.maxPendingRequests).toBe(10);
  });

  it('warns (does not reject) when perTryTimeout exceeds timeout', () => {
    const c = resolveResilienceConfig({ timeoutMs: 1000, perTryTimeoutMs: 2000 });
    expect(resilienceWarnings(c)).toEqual([expect.objectContaining({ field: 'perTryTimeout', value: 2000 })]);
    expect(resilienceWarnings(resolveResilienceConfig({ perTryTimeoutMs: 2000 }))).toEqual([]);
  });

  it('warns when a fixed hedge delay is at or above perTryTimeout: each attempt times out first, no hedge is sent', () => {
    const warned = (patch: Parameters<typeof resolveResilienceConfig>[0]) =>
      resilienceWarnings(resolveResilienceConfig(patch)).filter((w) => w.field === 'hedge.delay');
    expect(warned({ perTryTimeoutMs: 100, hedge: { delayMs: 200 } })).toEqual([
      expect.objectContaining({
        value: 200,
        expected: expect.stringMatching(/^below perTryTimeout \(100ms\)/),
      }),
    ]);
    expect(warned({ perTryTimeoutMs: 100, hedge: { delayMs: 100 } })).toHaveLength(1);
    expect(warned({ perTryTimeoutMs: 100, hedge: { delayMs: 50 } })).toEqual([]);
    // Both bounds passed: one warning, naming the tighter one.
    expect(warned({ timeoutMs: 300, perTryTimeoutMs: 100, hedge: { delayMs: 500 } })).toEqual([
      expect.objectContaining({ expected: expect.stringMatching(/^below perTryTimeout \(100ms\)/) }),
    ]);
    expect(warned({ timeoutMs: 100, perTryTimeoutMs: 300, hedge: { delayMs: 200 } })).toEqual([
      expect.objectContaining({ expected: expect.stringMatching(/^below timeout \(100ms\)/) }),
    ]);
    // A percentile delay is measured from attempts that succeeded within the per-try timeout.
    expect(warned({ perTryTimeoutMs: 100, hedge: { percentile: 95 } })).toEqual([]);
  });

  it('warns when circuitBreaker.maxRequests is below concurrencyLimit.max: the limit and its queue never act (probe31 sources 7)', () => {
    const c = resolveResilienceConfig({
      circuitBreaker: { maxRequests: 5 },
      concurrencyLimit: { max: 50, queue: 10 },
    });
    expect(resilienceWarnings(c)).toEqual([
      expect.objectContaining({
        field: 'concurrencyLimit.max',
        value: 50,
        expected: expect.stringContaining('and its queue never act'),
      }),
    ]);
    // Without a queue, the sentence is about the limit alone.
    expect(
      resilienceWarnings(
        resolveResilienceConfig({ circuitBreaker: { maxRequests: 5 }, concurrencyLimit: { max: 50 } }),
      ),
    ).toEqual([expect.objectContaining({ expected: expect.stringMatching(/so the limit never acts$/) })]);
    expect(
      resilienceWarnings(
        resolveResilienceConfig({ circuitBreaker: { maxRequests: 50 }, concurrencyLimit: { max: 50 } }),
      ),
    ).toEqual([]);
    expect(resilienceWarnings(resolveResilienceConfig({ concurrencyLimit: { max: 50 } }))).toEqual([]);
  });

  it('env values become the document shape: a section switch and its fields', () => {
    expect(
      resiliencePatchFromEnv({ MESH_CIRCUIT_BREAKER: 'false', MESH_MAX_REQUESTS: '5' })?.circuitBreaker,
    ).toBe(false);
    expect(
      resiliencePatchFromEnv({ MESH_CIRCUIT_BREAKER: 'on', MESH_MAX_REQUESTS: '5' })?.circuitBreaker,
    ).toEqual({
      maxRequests: 5,
    });
    expect(resiliencePatchFromEnv({ MESH_HEDGE_DELAY: 'p95' })?.hedge).toEqual({ percentile: 95 });
    expect(resiliencePatchFromEnv({ MESH_RATE_LIMIT: 'off', MESH_RATE_LIMIT_BURST: '3' })?.rateLimit).toBe(
      false,
    );
    expect(resiliencePatchFromEnv({ MESH_RETRY_BUDGET: '20%' })?.retry).toEqual({ budget: { ratio: 0.2 } });
  });
});

import { Issues, MeshError, SectionMemo } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import {
  BALANCER_CONFIG_KEYS,
  balancerEnvVars,
  balancerPatchFromEnv,
  DEFAULT_BALANCER_CONFIG,
  parseBalancerPatch,
  resolveBalancerConfig,
} from './config.js';

function parse(entry: Record<string, unknown>) {
  const issues = new Issues();
  const patch = parseBalancerPatch(entry, 'services.api', issues);
  return { patch, issues: issues.list };
}

describe('parseBalancerPatch', () => {
  it('returns undefined when no balancer key is present', () => {
    expect(parse({ endpoints: 'a:1' }).patch).toBeUndefined();
    expect(BALANCER_CONFIG_KEYS).toEqual(['loadBalancer', 'outlierDetection', 'healthCheck']);
  });

  it('parses every section', () => {
    const { patch, issues } = parse({
      loadBalancer: {
        policy: 'ring_hash',
        hashOn: { header: 'X-User' },
        minRingSize: 2048,
        zone: 'eu-1',
        panicThreshold: 30,
        slowStart: { window: '30s', aggression: 2 },
      },
      outlierDetection: { baseEjectionTime: '200ms', consecutive5xx: 3, successRate: { stdevFactor: 2.5 } },
      healthCheck: { path: '/healthz', interval: '5s', timeout: '500ms' },
    });
    expect(issues).toEqual([]);
    expect(patch).toEqual({
      loadBalancer: {
        policy: 'ring_hash',
        hashOn: { header: 'x-user' },
        minRingSize: 2048,
        zone: 'eu-1',
        panicThreshold: 30,
        slowStart: { window: 30_000, aggression: 2 },
      },
      outlierDetection: {
        enabled: true,
        baseEjectionTime: 200,
        consecutive5xx: 3,
        successRate: { stdevFactor: 2.5 },
      },
      healthCheck: { path: '/healthz', interval: 5000, timeout: 500 },
    });
  });

  it('names the field and value of an unknown policy, with a suggestion', () => {
    const { issues } = parse({ loadBalancer: { policy: 'least_requests' } });
    expect(issues).toHaveLength(1);
    expect(issues[0]?.field).toBe('services.api.loadBalancer.policy');
    expect(issues[0]?.value).toBe('least_requests');
    expect(issues[0]?.expected).toContain('did you mean "least_request"');
  });

  it('collects every problem: unknown keys, ranges, bad hashOn, non-prime table', () => {
    const { issues } = parse({
      loadBalancer: {
        polcy: 'random',
        choiceCount: 1,
        panicThreshold: 150,
        hashOn: { query: 'x' },
        tableSize: 1000,
      },
      outlierDetection: { maxEjectionPercent: -1, consecutive5xx: 2.5, successRate: { stdevFactr: 1 } },
      healthCheck: { path: 'healthz', healthyThreshold: 0 },
    });
    const fields = issues.map((i) => i.field).sort();
    expect(fields).toEqual(
      [
        'services.api.healthCheck.healthyThreshold',
        'services.api.healthCheck.path',
        'services.api.loadBalancer.choiceCount',
        'services.api.loadBalancer.hashOn',
        'services.api.loadBalancer.panicThreshold',
        'services.api.loadBalancer.polcy',
        'services.api.loadBalancer.tableSize',
        'services.api.outlierDetection.consecutive5xx',
        'services.api.outlierDetection.maxEjectionPercent',
        'services.api.outlierDetection.successRate.stdevFactr',
      ].sort(),
    );
    expect(issues.find((i) => i.field.endsWith('polcy'))?.expected).toContain('did you mean "policy"');
    expect(issues.find((i) => i.field.endsWith('panicThreshold'))?.value).toBe(150);
  });

  it('uses bare field names at the top level (empty path)', () => {
    const issues = new Issues();
    parseBalancerPatch({ loadBalancer: { policy: 'nope' } }, '', issues);
    expect(issues.list[0]?.field).toBe('loadBalancer.policy');
  });

  it('rejects sections that are not objects', () => {
    const { issues } = parse({ loadBalancer: 'random' });
    expect(issues[0]).toMatchObject({ field: 'services.api.loadBalancer', value: 'random' });
  });
});

describe('balancerPatchFromEnv', () => {
  it('is undefined when nothing is set; blank means unset', () => {
    expect(balancerPatchFromEnv({})).toBeUndefined();
    expect(balancerPatchFromEnv({ MESH_LB_POLICY: '  ', MESH_ZONE: '' })).toBeUndefined();
  });

  it('reads policy, zone and outlier settings', () => {
    expect(
      balancerPatchFromEnv({
        MESH_LB_POLICY: 'peak_ewma',
        MESH_ZONE: 'eu-1a',
        MESH_LB_SLOW_START_WINDOW: '10s',
        MESH_OUTLIER_BASE_EJECTION_TIME: '1s',
        MESH_OUTLIER_ENABLED: 'false',
      }),
    ).toEqual({
      loadBalancer: { policy: 'peak_ewma', zone: 'eu-1a', slowStart: { window: 10_000 } },
      outlierDetection: { baseEjectionTime: 1000, enabled: false },
    });
  });

  it('throws MESH_CONFIG_INVALID naming every bad variable and value', () => {
    let error: unknown;
    try {
      balancerPatchFromEnv({ MESH_LB_POLICY: 'fastest', MESH_LB_PANIC_THRESHOLD: '200' });
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    const m = (error as MeshError).message;
    expect(m).toContain('MESH_LB_POLICY');
    expect(m).toContain('"fastest"');
    expect(m).toContain('MESH_LB_PANIC_THRESHOLD');
    expect((error as MeshError).details.issues).toHaveLength(2);
  });

  it('documents every variable it reads', () => {
    const names = balancerEnvVars.map((v) => v.name);
    for (const n of ['MESH_LB_POLICY', 'MESH_ZONE', 'MESH_OUTLIER_BASE_EJECTION_TIME'])
      expect(names).toContain(n);
    for (const v of balancerEnvVars) {
      expect(v.description.length).toBeGreaterThan(10);
      expect(v.defaultValue).not.toBe('');
    }
  });
});

describe('resolveBalancerConfig', () => {
  it('starts from the defaults', () => {
    const c = resolveBalancerConfig();
    expect(c).toEqual(DEFAULT_BALANCER_CONFIG);
    expect(c.loadBalancer.policy).toBe('round_robin');
    expect(c.outlierDetection).toMatchObject({
      interval: 10_000,
      baseEjectionTime: 30_000,
      maxEjectionTime: 300_000,
      maxEjectionPercent: 10,
      consecutive5xx: 5,
      consecutiveGatewayFailure: 5,
      consecutiveLocalOriginFailure: 5,
      successRate: { minimumHosts: 5, requestVolume: 100, stdevFactor: 1.9 },
      failurePercentage: { threshold: 85, minimumHosts: 5, requestVolume: 50 },
    });
    expect(c.healthCheck).toBeUndefined();
    expect(JSON.parse(JSON.stringify(c))).toEqual(c);
  });

  it('merges later layers field by field, deep for nested objects', () => {
    const c = resolveBalancerConfig(
      {
        loadBalancer: { policy: 'random', slowStart: { window: 5000 } },
        outlierDetection: { successRate: { requestVolume: 10 } },
      },
      {
        loadBalancer: { zone: 'z', slowStart: { aggression: 2 } },
        outlierDetection: { successRate: { stdevFactor: 3 } },
      },
      { loadBalancer: { policy: 'maglev', hashOn: { cookie: 'sid' } } },
      { loadBalancer: { hashOn: 'source' } },
    );
    expect(c.loadBalancer).toMatchObject({ policy: 'maglev', zone: 'z', hashOn: 'source' });
    expect(c.loadBalancer.slowStart).toEqual({ window: 5000, aggression: 2, minWeightPercent: 10 });
    expect(c.outlierDetection.successRate).toEqual({
      minimumHosts: 5,
      requestVolume: 10,
      stdevFactor: 3,
      enforcing: 100,
    });
  });

  it('shares the merged sections of parsed patches; a patch written by hand is merged afresh each call', () => {
    // Services of a document share parsed sections (SectionMemo): their merges are made once and
    // frozen, so no service can change another's.
    const issues = new Issues();
    const memo = new SectionMemo();
    const a = parseBalancerPatch({ loadBalancer: { policy: 'random' } }, 'services.a', issues, memo);
    const b = parseBalancerPatch({ loadBalancer: { policy: 'random' } }, 'services.b', issues, memo);
    expect(issues.list).toEqual([]);
    const ca = resolveBalancerConfig(a!);
    const cb = resolveBalancerConfig(b!);
    expect(cb.loadBalancer).toBe(ca.loadBalancer);
    expect(Object.isFrozen(ca.loadBalancer)).toBe(true);
    // A hand-made section may be changed between calls: the second call sees the change.
    const hand: { loadBalancer: { policy: 'random' | 'maglev' } } = { loadBalancer: { policy: 'random' } };
    expect(resolveBalancerConfig(hand).loadBalancer.policy).toBe('random');
    hand.loadBalancer.policy = 'maglev';
    expect(resolveBalancerConfig(hand).loadBalancer.policy).toBe('maglev');
  });

  it('fills health check defaults and requires a path', () => {
    expect(resolveBalancerConfig({ healthCheck: { path: '/h' } }).healthCheck).toEqual({
      path: '/h',
      interval: 10_000,
      timeout: 1000,
      healthyThreshold: 2,
      unhealthyThreshold: 3,
      jitter: 0,
    });
    expect(() => resolveBalancerConfig({ healthCheck: { interval: 1000 } })).toThrowError(
      /healthCheck\.path/,
    );
  });

  it('rejects inconsistent combinations', () => {
    expect(() => resolveBalancerConfig({ loadBalancer: { minRingSize: 100, maxRingSize: 10 } })).toThrowError(
      /loadBalancer\.minRingSize/,
    );
    expect(() =>
      resolveBalancerConfig({ outlierDetection: { baseEjectionTime: 10_000, maxEjectionTime: 1000 } }),
    ).toThrowError(/maxEjectionTime/);
  });

  it('says when the other side of a rule is a built-in default, not a value the user wrote', () => {
    const message = (patch: Parameters<typeof resolveBalancerConfig>[0]): string => {
      try {
        resolveBalancerConfig(patch);
      } catch (e) {
        return (e as Error).message;
      }
      return 'accepted';
    };
    // An interval below the built-in timeout alone is valid: the timeout follows it down.
    expect(message({ healthCheck: { path: '/h', interval: 300 } })).toBe('accepted');
    expect(resolveBalancerConfig({ healthCheck: { path: '/h', interval: 300 } }).healthCheck?.timeout).toBe(
      300,
    );
    expect(message({ healthCheck: { path: '/h', interval: 300, timeout: 500 } })).toContain(
      'at most healthCheck.interval (300ms)',
    );
    expect(message({ healthCheck: { path: '/h', interval: 300, timeout: 500 } })).not.toContain('built-in');
    expect(message({ loadBalancer: { minRingSize: 10_000_000 } })).toContain(
      '8388608 is the built-in default loadBalancer.maxRingSize: set it too',
    );
    expect(message({ outlierDetection: { maxEjectionTime: 1000 } })).toContain(
      '30000ms is the built-in default outlierDetection.baseEjectionTime: set it too',
    );
    // The side the user never set is the default, whichever side of the rule it is on.
    expect(message({ loadBalancer: { maxRingSize: 512 } })).toContain(
      '1024 is the built-in default loadBalancer.minRingSize: set a smaller one',
    );
    expect(message({ loadBalancer: { maxRingSize: 512 } })).not.toContain('maxRingSize is the built-in');
    expect(
      message({ outlierDetection: { baseEjectionTime: 600_000, maxEjectionTime: 300_000 } }),
    ).not.toContain('built-in');
    expect(message({ loadBalancer: { minRingSize: 2048, maxRingSize: 512 } })).not.toContain('built-in');
  });
});

describe('loadBalancer.connectBackoff across layers', () => {
  const cb = (...patches: Parameters<typeof resolveBalancerConfig>) =>
    resolveBalancerConfig(...patches).loadBalancer.connectBackoff;

  it('defaults to 100 ms .. 500 ms, ×1.6 ± 20 %, 5 s per attempt', () => {
    expect(cb()).toEqual({
      initialMs: 100,
      maxMs: 500,
      multiplier: 1.6,
      jitter: 0.2,
      minConnectTimeoutMs: 5000,
    });
  });

  it('merges field by field over the layers below', () => {
    expect(
      cb(
        { loadBalancer: { connectBackoff: { maxMs: 2000 } } },
        { loadBalancer: { connectBackoff: { jitter: 0 } } },
      ),
    ).toEqual({
      initialMs: 100,
      maxMs: 2000,
      multiplier: 1.6,
      jitter: 0,
      minConnectTimeoutMs: 5000,
    });
  });

  it('an initial above the default max, max unset: the cap is the initial', () => {
    expect(cb({ loadBalancer: { connectBackoff: { initialMs: 1000 } } })).toMatchObject({
      initialMs: 1000,
      maxMs: 1000,
    });
  });

  it('a max set below the initial in force is an error naming both, and which one is the default', () => {
    expect(() =>
      resolveBalancerConfig(
        { loadBalancer: { connectBackoff: { maxMs: 200 } } },
        { loadBalancer: { connectBackoff: { initialMs: 1000 } } },
      ),
    ).toThrowError(
      /loadBalancer\.connectBackoff\.max.*at least loadBalancer\.connectBackoff\.initial \(1000ms\)/s,
    );
    expect(() => resolveBalancerConfig({ loadBalancer: { connectBackoff: { maxMs: 50 } } })).toThrowError(
      /100ms is the built-in default loadBalancer\.connectBackoff\.initial/,
    );
  });

  it('from the environment, through the same validator', () => {
    expect(
      balancerPatchFromEnv({ MESH_LB_CONNECT_BACKOFF_INITIAL: '250ms', MESH_LB_CONNECT_BACKOFF_MAX: '2s' })
        ?.loadBalancer,
    ).toEqual({ connectBackoff: { initialMs: 250, maxMs: 2000 } });
    expect(() => balancerPatchFromEnv({ MESH_LB_CONNECT_BACKOFF_MAX: 'later' })).toThrowError(
      /MESH_LB_CONNECT_BACKOFF_MAX.*later/s,
    );
  });
});

describe('maxEjectionTime unset: the larger of 300 s and baseEjectionTime (Envoy)', () => {
  it('a baseEjectionTime above 300 s alone is accepted and caps at itself', () => {
    const c = resolveBalancerConfig({ outlierDetection: { baseEjectionTime: 600_000 } });
    expect(c.outlierDetection.baseEjectionTime).toBe(600_000);
    expect(c.outlierDetection.maxEjectionTime).toBe(600_000);
  });
  it('below 300 s the default cap stays', () => {
    expect(
      resolveBalancerConfig({ outlierDetection: { baseEjectionTime: 60_000 } }).outlierDetection
        .maxEjectionTime,
    ).toBe(300_000);
  });
  it('a maxEjectionTime set in any layer is kept, and below baseEjectionTime is still an error', () => {
    expect(() =>
      resolveBalancerConfig(
        { outlierDetection: { maxEjectionTime: 400_000 } },
        { outlierDetection: { baseEjectionTime: 600_000 } },
      ),
    ).toThrowError(
      /outlierDetection\.maxEjectionTime: expected at least outlierDetection\.baseEjectionTime \(600000ms\)/,
    );
  });
});

describe('turning a section off in a later layer', () => {
  it('healthCheck: false removes a health check an earlier layer set; outlierDetection: false disables ejection', () => {
    const issues = new Issues();
    const defaults = parseBalancerPatch({ healthCheck: { path: '/healthz' } }, 'defaults', issues)!;
    const service = parseBalancerPatch(
      { healthCheck: false, outlierDetection: false },
      'services.api',
      issues,
    )!;
    expect(issues.list).toEqual([]);
    expect(resolveBalancerConfig(defaults).healthCheck?.path).toBe('/healthz');
    const merged = resolveBalancerConfig(defaults, service);
    expect(merged.healthCheck).toBeUndefined();
    expect(merged.outlierDetection.enabled).toBe(false);
  });

  it('outlierDetection: false discards what lower layers set, as every section does (defect 2)', () => {
    const at = (entry: Record<string, unknown>) => parse(entry).patch!;
    const below = at({ outlierDetection: { consecutive5xx: 9, interval: '2s' } });
    const off = at({ outlierDetection: false });
    expect(off.outlierDetection).toBe(false);
    // Turned back on by an object: from the built-in defaults, not from the fields below the `false`.
    // Before: consecutive5xx stayed 9 and interval 2000.
    const on = resolveBalancerConfig(below, off, at({ outlierDetection: { baseEjectionTime: '1m' } }));
    expect(on.outlierDetection).toEqual({
      ...DEFAULT_BALANCER_CONFIG.outlierDetection,
      baseEjectionTime: 60_000,
    });
    // ... or by `true`: the defaults, as `concurrencyLimit: { max: 5 }` → false → true gives.
    expect(resolveBalancerConfig(below, off, at({ outlierDetection: true })).outlierDetection).toEqual(
      DEFAULT_BALANCER_CONFIG.outlierDetection,
    );
    // Off, it is off over the defaults.
    expect(resolveBalancerConfig(below, off).outlierDetection).toEqual({
      ...DEFAULT_BALANCER_CONFIG.outlierDetection,
      enabled: false,
    });
    // A cross-field rule names a built-in default when the value below the `false` was discarded.
    expect(() =>
      resolveBalancerConfig(
        at({ outlierDetection: { baseEjectionTime: '1s' } }),
        off,
        at({ outlierDetection: { maxEjectionTime: '10s' } }),
      ),
    ).toThrowError(/30000ms is the built-in default outlierDetection\.baseEjectionTime/);
  });

  it('an `enabled: false` field (MESH_OUTLIER_ENABLED=false) keeps the fields for a layer that turns it back on', () => {
    const env = balancerPatchFromEnv({ MESH_OUTLIER_ENABLED: 'false', MESH_OUTLIER_CONSECUTIVE_5XX: '9' })!;
    expect(env.outlierDetection).toEqual({ enabled: false, consecutive5xx: 9 });
    expect(resolveBalancerConfig(env).outlierDetection.enabled).toBe(false);
    for (const above of [{ outlierDetection: true }, { outlierDetection: { interval: '5s' } }]) {
      const c = resolveBalancerConfig(env, parse(above).patch!).outlierDetection;
      expect(c.enabled).toBe(true);
      expect(c.consecutive5xx).toBe(9);
    }
  });
});

describe('sections as schema declarations (#10)', () => {
  it('outlierDetection: true means Envoy defaults, false turns it off; loadBalancer cannot be off', () => {
    expect(resolveBalancerConfig(parse({ outlierDetection: true }).patch!).outlierDetection.enabled).toBe(
      true,
    );
    expect(resolveBalancerConfig(parse({ outlierDetection: false }).patch!).outlierDetection.enabled).toBe(
      false,
    );
    expect(parse({ loadBalancer: true }).issues).toEqual([]);
    expect(parse({ loadBalancer: false }).issues.map((i) => i.field)).toEqual(['services.api.loadBalancer']);
    expect(parse({ healthCheck: true }).issues.map((i) => i.field)).toEqual(['services.api.healthCheck']);
  });

  it('ring min above max is an error, in one section and across layers', () => {
    expect(parse({ loadBalancer: { minRingSize: 10, maxRingSize: 5 } }).issues.map((i) => i.field)).toEqual([
      'services.api.loadBalancer.minRingSize',
    ]);
    expect(() =>
      resolveBalancerConfig({ loadBalancer: { maxRingSize: 5 } }, { loadBalancer: { minRingSize: 10 } }),
    ).toThrowError(/minRingSize/);
  });

  it('env values go through the same validator, named by variable', () => {
    expect(
      balancerPatchFromEnv({ MESH_LB_POLICY: 'peak_ewma', MESH_LB_SLOW_START_WINDOW: '5s' })?.loadBalancer,
    ).toEqual({
      policy: 'peak_ewma',
      slowStart: { window: 5000 },
    });
    expect(() => balancerPatchFromEnv({ MESH_LB_POLICY: 'round_robbin' })).toThrowError(
      /MESH_LB_POLICY: expected one of .*did you mean "round_robin"/,
    );
  });
});

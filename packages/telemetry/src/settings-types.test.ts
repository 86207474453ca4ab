import { describe, expect, it } from 'vitest';
import { resolveTelemetryConfig, type TelemetryConfig, type TelemetrySettings } from './config.js';

// Type-level checks: `pnpm typecheck` fails if a setting the runtime fills in is required, or if a
// misspelt or mistyped one compiles.

// A port alone: `host` and `eventHistory` come from the environment or the defaults.
const portOnly: TelemetrySettings = { admin: { port: 0 } };
const metricsOff: TelemetrySettings = { metrics: { enabled: false } };
const BUCKETS = [0.01, 0.1, 1] as const;
const readonlyBuckets: TelemetrySettings = { metrics: { durationBuckets: BUCKETS } };
const empty: TelemetrySettings = { admin: {}, metrics: {}, tracing: {} };
// The resolved config, defaults applied, is a valid settings document too.
const resolved: TelemetrySettings = resolveTelemetryConfig({});
// @ts-expect-error a misspelt admin field does not compile
const typo: TelemetrySettings = { admin: { prot: 9901 } };
// @ts-expect-error a string where a number is expected does not compile
const badType: TelemetrySettings = { admin: { port: '9901' } };
// @ts-expect-error a misspelt section does not compile
const typoSection: TelemetrySettings = { tracng: { enabled: false } };
// The resolved type keeps its defaults required (a shallow `Partial` of it needed `host` too).
// @ts-expect-error `host` and `eventHistory` are required once resolved
const shallow: Partial<TelemetryConfig> = { admin: { port: 0 } };

describe('TelemetrySettings', () => {
  it('is what resolveTelemetryConfig fills in: every field may be left out', () => {
    expect(resolveTelemetryConfig(portOnly).admin).toEqual({ port: 0, host: '127.0.0.1', eventHistory: 256 });
    expect(resolveTelemetryConfig(metricsOff).metrics.enabled).toBe(false);
    expect(resolveTelemetryConfig(readonlyBuckets).metrics.durationBuckets).toEqual([0.01, 0.1, 1]);
    expect(resolveTelemetryConfig(empty)).toEqual(resolveTelemetryConfig({}));
    expect(resolveTelemetryConfig(resolved)).toEqual(resolved);
    expect(() => resolveTelemetryConfig(typo)).toThrowError(/telemetry\.admin/);
    expect(() => resolveTelemetryConfig(badType)).toThrowError(/telemetry\.admin\.port/);
    expect(() => resolveTelemetryConfig(typoSection)).toThrowError(/telemetry/);
    expect(shallow.admin?.port).toBe(0);
  });
});

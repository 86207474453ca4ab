import { MeshError, validator } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import {
  OTEL_DURATION_BUCKETS,
  resolveTelemetryConfig,
  telemetryEnvVars,
  telemetryPatchFromEnv,
  telemetrySection,
} from './config.js';

describe('resolveTelemetryConfig', () => {
  it('applies the defaults: metrics and tracing on, no access log, no admin server', () => {
    expect(resolveTelemetryConfig()).toEqual({
      admin: { host: '127.0.0.1', eventHistory: 256 },
      metrics: { enabled: true, durationBuckets: [...OTEL_DURATION_BUCKETS] },
      tracing: { enabled: true },
    });
  });

  it('returns defaults that pass the schema (they are not checked again when nothing is set)', () => {
    expect(validator(telemetrySection).check(resolveTelemetryConfig({}, {}))).toBe(true);
  });

  it('reads MESH_ACCESS_LOG, MESH_ADMIN_PORT, MESH_ADMIN_HOST, MESH_METRICS, MESH_TRACING', () => {
    const c = resolveTelemetryConfig(
      {},
      {
        MESH_ACCESS_LOG: 'stdout',
        MESH_ADMIN_PORT: '9901',
        MESH_ADMIN_HOST: '0.0.0.0',
        MESH_METRICS: 'false',
        MESH_TRACING: 'off',
        MESH_ADMIN_EVENTS: '32',
      },
    );
    expect(c).toMatchObject({
      accessLog: 'stdout',
      admin: { port: 9901, host: '0.0.0.0', eventHistory: 32 },
      metrics: { enabled: false },
      tracing: { enabled: false },
    });
  });

  it('MESH_ACCESS_LOG: a boolean word on is stdout, off is none, never a file named ./true or ./0', () => {
    for (const on of ['true', 'TRUE', '1', 'yes', 'on'])
      expect(resolveTelemetryConfig({}, { MESH_ACCESS_LOG: on }).accessLog).toBe('stdout');
    for (const off of ['false', '0', 'no', 'off', 'none', 'disabled'])
      expect(resolveTelemetryConfig({}, { MESH_ACCESS_LOG: off }).accessLog).toBeUndefined();
    expect(resolveTelemetryConfig({}, { MESH_ACCESS_LOG: './true' }).accessLog).toBe('./true');
    expect(resolveTelemetryConfig({}, { MESH_ACCESS_LOG: 'stderr' }).accessLog).toBe('stderr');
  });

  it('treats blank variables as unset and lets options win over the environment', () => {
    expect(
      resolveTelemetryConfig({ admin: { port: 0 } }, { MESH_ADMIN_PORT: '9901', MESH_ACCESS_LOG: ' ' }),
    ).toMatchObject({
      admin: { port: 0, host: '127.0.0.1' },
    });
    expect(resolveTelemetryConfig({}, { MESH_ACCESS_LOG: ' ' }).accessLog).toBeUndefined();
  });

  it('rejects bad values naming the variable and the quoted value, listing every problem', () => {
    let error: unknown;
    try {
      resolveTelemetryConfig(
        { metrics: { durationBuckets: [] } },
        { MESH_ADMIN_PORT: 'nine', MESH_METRICS: 'maybe' },
      );
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    const e = error as MeshError;
    const fields = e.details.issues?.map((i) => i.field);
    expect(fields).toEqual(
      expect.arrayContaining(['MESH_ADMIN_PORT', 'MESH_METRICS', 'telemetry.metrics.durationBuckets']),
    );
    expect(e.message).toContain('"nine"');
    expect(e.message).toContain('"maybe"');
    // In the variable's own notation: it takes yes/no, 1/0 and on/off too.
    expect(e.message).toContain(
      'MESH_METRICS: expected a boolean (true/false, 1/0, yes/no, on/off), got "maybe"',
    );
  });

  it('rejects a MESH_ADMIN_HOST that is neither an IP address nor a host name, naming it and the value', () => {
    let error: unknown;
    try {
      resolveTelemetryConfig({}, { MESH_ADMIN_PORT: '0', MESH_ADMIN_HOST: 'not a host!' });
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    expect((error as MeshError).details).toMatchObject({ field: 'MESH_ADMIN_HOST', value: 'not a host!' });
    expect((error as MeshError).message).toContain('MESH_ADMIN_HOST: expected an IP address or a host name');
    expect(() => resolveTelemetryConfig({ admin: { host: '10.0.0.256' } })).toThrow(
      /telemetry\.admin\.host: expected an IP address or a host name, got "10\.0\.0\.256"/,
    );
  });

  it.each(['0.0.0.0', '::', '::1', 'localhost', 'admin.internal.example'])(
    'accepts %s as the admin host',
    (host) => {
      expect(resolveTelemetryConfig({}, { MESH_ADMIN_HOST: host }).admin.host).toBe(host);
    },
  );

  it('rejects a port out of range and unknown fields', () => {
    expect(() => resolveTelemetryConfig({ admin: { port: 70000 } })).toThrow(/telemetry\.admin\.port/);
    expect(() => resolveTelemetryConfig({ admin: { prot: 1 } })).toThrow(/telemetry\.admin/);
  });

  it('documents exactly the variables it reads', () => {
    const env = Object.fromEntries(telemetryEnvVars.map((v) => [v.name, 'x']));
    const doc = JSON.stringify(telemetryPatchFromEnv(env));
    expect(JSON.parse(doc)).toMatchObject({
      accessLog: 'x',
      admin: { port: 'x', host: 'x', eventHistory: 'x' },
    });
    expect(telemetryEnvVars.map((v) => v.name).sort()).toEqual([
      'MESH_ACCESS_LOG',
      'MESH_ADMIN_EVENTS',
      'MESH_ADMIN_HOST',
      'MESH_ADMIN_PORT',
      'MESH_METRICS',
      'MESH_TRACING',
    ]);
  });
});

describe('MESH_ACCESS_LOG off words (probe20 note)', () => {
  it.each(['off', 'none', 'false', 'no', 'disabled', 'OFF'])(
    'MESH_ACCESS_LOG=%s is no access log, not a file',
    (v) => {
      expect(resolveTelemetryConfig({}, { MESH_ACCESS_LOG: v }).accessLog).toBeUndefined();
    },
  );

  it('a path still is one', () => {
    expect(resolveTelemetryConfig({}, { MESH_ACCESS_LOG: './off' }).accessLog).toBe('./off');
  });
});

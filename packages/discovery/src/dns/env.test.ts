import { MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { dnsEnvVars, dnsOptionsFromEnv } from './env.js';
import { createDnsResolver } from './resolver.js';

function configIssues(env: Record<string, string>): { field: string; value: unknown }[] {
  try {
    dnsOptionsFromEnv(env);
  } catch (error) {
    if (!MeshError.is(error, 'MESH_CONFIG_INVALID')) throw error;
    return (error.details.issues ?? []).map((i) => ({ field: i.field, value: i.value }));
  }
  throw new Error('expected MESH_CONFIG_INVALID');
}

describe('dnsOptionsFromEnv', () => {
  it('returns undefined when DNS discovery is not selected', () => {
    expect(dnsOptionsFromEnv({})).toBeUndefined();
    expect(dnsOptionsFromEnv({ MESH_REGISTRY: 'consul', MESH_DNS_SRV: 'nonsense' })).toBeUndefined();
  });

  it('reads every variable', () => {
    expect(
      dnsOptionsFromEnv({
        MESH_REGISTRY: 'dns',
        MESH_DNS_SERVERS: '10.0.0.2:5353, [fd00::2]:53,10.0.0.3',
        MESH_DNS_DOMAIN: 'svc.cluster.local,.Mesh.Test.',
        MESH_DNS_SERVICES: 'payments,api.example.com',
        MESH_DNS_SRV: '_grpc._tcp',
        MESH_DNS_DEFAULT_PORT: '8080',
        MESH_DNS_MIN_REFRESH: '2s',
        MESH_DNS_MAX_REFRESH: '1m',
        MESH_DNS_TIMEOUT: '750ms',
        MESH_DNS_ATTEMPTS: '3',
      }),
    ).toEqual({
      servers: [
        { address: '10.0.0.2', port: 5353 },
        { address: 'fd00::2', port: 53 },
        { address: '10.0.0.3', port: 53 },
      ],
      domains: ['svc.cluster.local', 'mesh.test'],
      services: ['payments', 'api.example.com'],
      srv: '_grpc._tcp',
      defaultPort: 8080,
      minRefreshMs: 2_000,
      maxRefreshMs: 60_000,
      timeoutMs: 750,
      attempts: 3,
    });
  });

  it('is selected by MESH_DNS_SERVICES alone (it used to select nothing, silently)', () => {
    expect(dnsOptionsFromEnv({ MESH_DNS_SERVICES: 'api.internal' })).toMatchObject({
      services: ['api.internal'],
    });
  });

  it('is selected by MESH_DNS_DOMAIN or MESH_DNS_SERVERS alone; MESH_DNS_SRV takes booleans', () => {
    expect(dnsOptionsFromEnv({ MESH_DNS_DOMAIN: 'mesh.test', MESH_DNS_SRV: 'false' })).toEqual({
      domains: ['mesh.test'],
      srv: false,
    });
    expect(
      dnsOptionsFromEnv({ MESH_DNS_SERVERS: '127.0.0.1:53', MESH_DNS_SERVICES: 'api', MESH_DNS_SRV: 'yes' }),
    ).toEqual({
      servers: [{ address: '127.0.0.1', port: 53 }],
      services: ['api'],
      srv: true,
    });
  });

  it('MESH_DNS_SRV=name asks SRV of the name itself (Consul DNS)', () => {
    expect(dnsOptionsFromEnv({ MESH_DNS_DOMAIN: 'service.consul', MESH_DNS_SRV: 'Name' })).toEqual({
      domains: ['service.consul'],
      srv: 'name',
    });
  });

  it('asks for brackets around an IPv6 server that could end in a port (::1:5353)', () => {
    // It was taken as the address ::1:5353 on port 53, where [::1]:5353 was meant.
    expect(configIssues({ MESH_DNS_SERVERS: '::1:5353,fd00::1:53', MESH_DNS_DOMAIN: 'mesh.test' })).toEqual([
      { field: 'MESH_DNS_SERVERS[0]', value: '::1:5353' },
      { field: 'MESH_DNS_SERVERS[1]', value: 'fd00::1:53' },
    ]);
    let message = '';
    try {
      dnsOptionsFromEnv({ MESH_DNS_SERVERS: '::1:5353', MESH_DNS_DOMAIN: 'mesh.test' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('[::1]:5353 for port 5353, or [::1:5353]:53 for the address ::1:5353');
    expect(
      dnsOptionsFromEnv({
        MESH_DNS_SERVERS: '[::1]:5353,[::1:5353]:53,fd00::2,::1',
        MESH_DNS_DOMAIN: 'mesh.test',
      })?.servers,
    ).toEqual([
      { address: '::1', port: 5353 },
      { address: '::1:5353', port: 53 },
      { address: 'fd00::2', port: 53 },
      { address: '::1', port: 53 },
    ]);
    expect(() => createDnsResolver({ servers: ['::1:5353'] })).toThrow(
      /options\.servers\[0\].*\[::1\]:5353 for port 5353/,
    );
  });

  it('lists every bad variable with its value, all at once', () => {
    expect(
      configIssues({
        MESH_REGISTRY: 'dns',
        MESH_DNS_SERVERS: '10.0.0.2:99999,dns.example.com:53,[::1]',
        MESH_DNS_DOMAIN: 'ok.test,bad domain',
        MESH_DNS_SERVICES: 'api,,x',
        MESH_DNS_SRV: 'http.tcp',
        MESH_DNS_DEFAULT_PORT: '0',
        MESH_DNS_MIN_REFRESH: 'soon',
        MESH_DNS_MAX_REFRESH: '-1s',
        MESH_DNS_TIMEOUT: '0',
        MESH_DNS_ATTEMPTS: '6',
      }),
    ).toEqual([
      { field: 'MESH_DNS_SERVERS[0]', value: '10.0.0.2:99999' },
      { field: 'MESH_DNS_SERVERS[1]', value: 'dns.example.com:53' },
      { field: 'MESH_DNS_SERVERS[2]', value: '[::1]' },
      { field: 'MESH_DNS_DOMAIN[1]', value: 'bad domain' },
      { field: 'MESH_DNS_SERVICES[1]', value: '' },
      { field: 'MESH_DNS_SRV', value: 'http.tcp' },
      { field: 'MESH_DNS_DEFAULT_PORT', value: '0' },
      { field: 'MESH_DNS_MIN_REFRESH', value: 'soon' },
      { field: 'MESH_DNS_MAX_REFRESH', value: '-1s' },
      { field: 'MESH_DNS_TIMEOUT', value: '0' },
      { field: 'MESH_DNS_ATTEMPTS', value: '6' },
    ]);
  });

  it('names the variables and values in the message', () => {
    try {
      dnsOptionsFromEnv({ MESH_DNS_DOMAIN: 'mesh.test', MESH_DNS_DEFAULT_PORT: 'http' });
      throw new Error('expected a throw');
    } catch (error) {
      expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
      expect((error as Error).message).toContain('MESH_DNS_DEFAULT_PORT');
      expect((error as Error).message).toContain('"http"');
    }
  });

  it('rejects MESH_REGISTRY=dns with nothing to answer for', () => {
    expect(configIssues({ MESH_REGISTRY: 'dns' })).toEqual([{ field: 'MESH_DNS_DOMAIN', value: undefined }]);
  });

  it('rejects a minimum refresh above the maximum', () => {
    expect(
      configIssues({ MESH_DNS_DOMAIN: 'mesh.test', MESH_DNS_MIN_REFRESH: '10m', MESH_DNS_MAX_REFRESH: '1m' }),
    ).toEqual([{ field: 'MESH_DNS_MIN_REFRESH', value: '10m' }]);
    expect(configIssues({ MESH_DNS_DOMAIN: 'mesh.test', MESH_DNS_MAX_REFRESH: '1s' })).toEqual([
      { field: 'MESH_DNS_MAX_REFRESH', value: '1s' },
    ]);
  });

  it('documents every variable it reads', () => {
    expect(dnsEnvVars.map((v) => v.name).sort()).toEqual(
      [
        'MESH_DNS_ATTEMPTS',
        'MESH_DNS_DEFAULT_PORT',
        'MESH_DNS_DOMAIN',
        'MESH_DNS_MAX_REFRESH',
        'MESH_DNS_MIN_REFRESH',
        'MESH_DNS_SERVERS',
        'MESH_DNS_SERVICES',
        'MESH_DNS_SRV',
        'MESH_DNS_TIMEOUT',
      ].sort(),
    );
  });
});

import { MeshError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { createDnsResolver, type DnsResolverOptions } from './resolver.js';

function issues(options: DnsResolverOptions): { field: string; value: unknown }[] {
  try {
    createDnsResolver(options);
  } catch (error) {
    if (!MeshError.is(error, 'MESH_CONFIG_INVALID')) throw error;
    return (error.details.issues ?? []).map((i) => ({ field: i.field, value: i.value }));
  }
  throw new Error('expected MESH_CONFIG_INVALID');
}

describe('createDnsResolver options', () => {
  it('matches hosts under its domains and listed names, and nothing else', async () => {
    const r = createDnsResolver({
      servers: ['127.0.0.1:53'],
      domains: ['svc.cluster.local', 'mesh.test.'],
      services: ['payments', 'API.example.com'],
    });
    expect(r.name).toBe('dns');
    expect(r.match('api.svc.cluster.local')).toBe('api.svc.cluster.local');
    expect(r.match('Api.Mesh.Test.')).toBe('api.mesh.test');
    expect(r.match('payments')).toBe('payments');
    expect(r.match('api.example.com')).toBe('api.example.com');
    expect(r.match('svc.cluster.local')).toBeUndefined();
    expect(r.match('evilsvc.cluster.local')).toBeUndefined();
    expect(r.match('example.com')).toBeUndefined();
    expect(r.dnsName('payments')).toBe('payments.svc.cluster.local');
    expect(r.dnsName('api.example.com')).toBe('api.example.com');
    await r.close();
    await expect(r.close()).resolves.toBeUndefined();
  });

  it('accepts bare IPs (port 53) and DnsServer objects', async () => {
    const r = createDnsResolver({ servers: ['10.0.0.2', { address: '::1', port: 5353 }, '[fd00::1]:53'] });
    await r.close();
  });

  it('rejects bad options, listing each field and value', () => {
    expect(
      issues({
        servers: ['dns.example.com:53', { address: '10.0.0.1', port: 0 }],
        domains: ['bad domain'],
        services: ['10.0.0.1'],
        srv: 'http',
        defaultPort: 70000,
        minRefreshMs: 0,
        maxRefreshMs: 2.5,
        timeoutMs: -1,
        attempts: 0,
        backoff: { baseMs: 0, capMs: 100 },
      }),
    ).toEqual([
      { field: 'options.servers[0]', value: 'dns.example.com:53' },
      { field: 'options.servers[1].port', value: 0 },
      { field: 'options.domains[0]', value: 'bad domain' },
      { field: 'options.services[0]', value: '10.0.0.1' },
      { field: 'options.srv', value: 'http' },
      { field: 'options.defaultPort', value: 70000 },
      { field: 'options.minRefreshMs', value: 0 },
      { field: 'options.maxRefreshMs', value: 2.5 },
      { field: 'options.timeoutMs', value: -1 },
      { field: 'options.attempts', value: 0 },
      { field: 'options.backoff.baseMs', value: 0 },
    ]);
  });

  it('rejects an empty server list and min above max', () => {
    expect(issues({ servers: [], minRefreshMs: 10_000, maxRefreshMs: 1_000 })).toEqual([
      { field: 'options.servers', value: [] },
      { field: 'options.maxRefreshMs', value: 1_000 },
    ]);
  });
});

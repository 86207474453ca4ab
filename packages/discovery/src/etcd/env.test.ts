import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshError } from '@proxyless/core';
import { afterAll, describe, expect, it } from 'vitest';
import { etcdEnvVars, etcdOptionsFromEnv } from './env.js';

const dir = mkdtempSync(join(tmpdir(), 'proxyless-etcd-env-'));
const pem = join(dir, 'ca.pem');
writeFileSync(pem, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');

function fails(env: Record<string, string>): MeshError {
  try {
    etcdOptionsFromEnv(env);
  } catch (error) {
    if (MeshError.is(error, 'MESH_CONFIG_INVALID')) return error;
    throw error;
  }
  throw new Error('expected MESH_CONFIG_INVALID');
}

describe('etcdOptionsFromEnv', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is not selected without MESH_REGISTRY=etcd or MESH_ETCD_ENDPOINTS', () => {
    expect(etcdOptionsFromEnv({})).toBeUndefined();
    expect(etcdOptionsFromEnv({ MESH_ETCD_PREFIX: '/x/' })).toBeUndefined();
    expect(
      etcdOptionsFromEnv({ MESH_REGISTRY: 'consul', MESH_ETCD_ENDPOINTS: '127.0.0.1:2379' }),
    ).toBeUndefined();
    expect(etcdOptionsFromEnv({ MESH_ETCD_ENDPOINTS: '   ' })).toBeUndefined();
  });

  it('defaults the endpoint to 127.0.0.1:2379 with MESH_REGISTRY=etcd', () => {
    expect(etcdOptionsFromEnv({ MESH_REGISTRY: 'etcd' })).toEqual({ endpoints: ['127.0.0.1:2379'] });
  });

  it('reads every variable', () => {
    expect(
      etcdOptionsFromEnv({
        MESH_ETCD_ENDPOINTS: '10.0.0.5:2379, https://etcd-1.example:2379,[::1]:2379',
        MESH_ETCD_PREFIX: '/apps/mesh/',
        MESH_ETCD_SUFFIX: '.Mesh.Internal',
        MESH_ETCD_USERNAME: 'mesh',
        MESH_ETCD_PASSWORD: 's3cret',
        MESH_ETCD_CACERT: pem,
        MESH_ETCD_CERT: pem,
        MESH_ETCD_KEY: pem,
        MESH_ETCD_LEASE_TTL: '15s',
      }),
    ).toEqual({
      endpoints: ['10.0.0.5:2379', 'https://etcd-1.example:2379', '[::1]:2379'],
      prefix: '/apps/mesh/',
      suffix: 'mesh.internal',
      username: 'mesh',
      password: 's3cret',
      caCert: pem,
      cert: pem,
      key: pem,
      leaseTtlSeconds: 15,
    });
  });

  it('reads MESH_ETCD_CONFIG_PREFIX: a prefix apart from the service keys, or off', () => {
    const e = { MESH_REGISTRY: 'etcd' };
    expect(etcdOptionsFromEnv({ ...e, MESH_ETCD_CONFIG_PREFIX: '/staging/config' })?.configPrefix).toBe(
      '/staging/config/',
    );
    expect(etcdOptionsFromEnv({ ...e, MESH_ETCD_CONFIG_PREFIX: 'OFF' })?.configPrefix).toBe(false);
    expect(etcdOptionsFromEnv(e)?.configPrefix).toBeUndefined();
    expect(fails({ ...e, MESH_ETCD_CONFIG_PREFIX: '/proxyless/services/cfg/' }).message).toContain(
      'MESH_ETCD_CONFIG_PREFIX: expected a key prefix apart from the service keys\' "/proxyless/services/" (neither inside the other), got "/proxyless/services/cfg/"',
    );
    expect(
      fails({ ...e, MESH_ETCD_PREFIX: '/a/', MESH_ETCD_CONFIG_PREFIX: '/' }).details.issues?.[0],
    ).toMatchObject({ field: 'MESH_ETCD_CONFIG_PREFIX', value: '/' });
    expect(fails({ ...e, MESH_ETCD_CONFIG_PREFIX: '/my config/' }).message).toContain(
      'MESH_ETCD_CONFIG_PREFIX: expected a key prefix without spaces or control characters, or off',
    );
  });

  it('rounds a lease TTL up to whole seconds', () => {
    expect(
      etcdOptionsFromEnv({ MESH_REGISTRY: 'etcd', MESH_ETCD_LEASE_TTL: '1500ms' })?.leaseTtlSeconds,
    ).toBe(2);
    expect(etcdOptionsFromEnv({ MESH_REGISTRY: 'etcd', MESH_ETCD_LEASE_TTL: '1m' })?.leaseTtlSeconds).toBe(
      60,
    );
  });

  it.each([
    ['MESH_ETCD_ENDPOINTS', { MESH_ETCD_ENDPOINTS: '127.0.0.1' }, '"127.0.0.1"'],
    ['MESH_ETCD_ENDPOINTS', { MESH_ETCD_ENDPOINTS: '127.0.0.1:99999' }, '99999'],
    ['MESH_ETCD_ENDPOINTS', { MESH_ETCD_ENDPOINTS: 'a:1,,b:2' }, '"a:1,,b:2"'],
    ['MESH_ETCD_ENDPOINTS', { MESH_ETCD_ENDPOINTS: 'ftp://etcd:2379' }, 'ftp://etcd:2379'],
    ['MESH_ETCD_ENDPOINTS', { MESH_ETCD_ENDPOINTS: 'http://etcd' }, 'http://etcd'],
    // Accepted before: both schemes at once, and user info and a path dropped silently.
    [
      'MESH_ETCD_ENDPOINTS',
      { MESH_ETCD_ENDPOINTS: 'https://127.0.0.1:2379,http://127.0.0.1:2380' },
      'one scheme',
    ],
    ['MESH_ETCD_ENDPOINTS', { MESH_ETCD_ENDPOINTS: 'http://user:pw@127.0.0.1:2379' }, 'user:***@'],
    ['MESH_ETCD_ENDPOINTS', { MESH_ETCD_ENDPOINTS: 'http://127.0.0.1:2379/v3' }, '/v3'],
    ['MESH_ETCD_LEASE_TTL', { MESH_REGISTRY: 'etcd', MESH_ETCD_LEASE_TTL: 'ten' }, '"ten"'],
    ['MESH_ETCD_LEASE_TTL', { MESH_REGISTRY: 'etcd', MESH_ETCD_LEASE_TTL: '500ms' }, '"500ms"'],
    ['MESH_ETCD_LEASE_TTL', { MESH_REGISTRY: 'etcd', MESH_ETCD_LEASE_TTL: '10' }, '"10"'],
    ['MESH_ETCD_PREFIX', { MESH_REGISTRY: 'etcd', MESH_ETCD_PREFIX: '/a b/' }, '"/a b/"'],
    ['MESH_ETCD_SUFFIX', { MESH_REGISTRY: 'etcd', MESH_ETCD_SUFFIX: 'bad suffix!' }, '"bad suffix!"'],
    ['MESH_ETCD_PASSWORD', { MESH_REGISTRY: 'etcd', MESH_ETCD_USERNAME: 'mesh' }, 'undefined'],
    ['MESH_ETCD_USERNAME', { MESH_REGISTRY: 'etcd', MESH_ETCD_PASSWORD: 'x' }, 'undefined'],
    [
      'MESH_ETCD_CACERT',
      { MESH_REGISTRY: 'etcd', MESH_ETCD_CACERT: '/nonexistent/ca.pem' },
      '"/nonexistent/ca.pem"',
    ],
    ['MESH_ETCD_KEY', { MESH_REGISTRY: 'etcd', MESH_ETCD_CERT: pem }, 'undefined'],
    ['MESH_ETCD_CERT', { MESH_REGISTRY: 'etcd', MESH_ETCD_KEY: pem }, 'undefined'],
  ] as const)('rejects a bad %s, repeating the value', (name, env, shown) => {
    const error = fails(env);
    expect(error.details.issues?.map((i) => i.field)).toEqual([name]);
    expect(error.message).toContain(name);
    expect(error.message).toContain(shown);
  });

  it('lists every bad variable at once and applies none of them', () => {
    const error = fails({
      MESH_ETCD_ENDPOINTS: 'nope',
      MESH_ETCD_LEASE_TTL: 'soon',
      MESH_ETCD_CACERT: '/nonexistent/ca.pem',
      MESH_ETCD_USERNAME: 'mesh',
    });
    expect(error.details.issues?.map((i) => i.field).sort()).toEqual([
      'MESH_ETCD_CACERT',
      'MESH_ETCD_ENDPOINTS',
      'MESH_ETCD_LEASE_TTL',
      'MESH_ETCD_PASSWORD',
    ]);
    expect(error.message).toContain('4 problems');
  });

  it('never repeats the password in an error', () => {
    const error = fails({ MESH_REGISTRY: 'etcd', MESH_ETCD_PASSWORD: 'hunter2' });
    expect(error.message).not.toContain('hunter2');
    expect(JSON.stringify(error.details)).not.toContain('hunter2');
  });

  it('documents every variable it reads', () => {
    expect(etcdEnvVars.map((v) => v.name).sort()).toEqual([
      'MESH_ETCD_CACERT',
      'MESH_ETCD_CERT',
      'MESH_ETCD_CONFIG_PREFIX',
      'MESH_ETCD_ENDPOINTS',
      'MESH_ETCD_KEY',
      'MESH_ETCD_LEASE_TTL',
      'MESH_ETCD_PASSWORD',
      'MESH_ETCD_PREFIX',
      'MESH_ETCD_SUFFIX',
      'MESH_ETCD_USERNAME',
    ]);
  });
});

import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { consulOptionsFromEnv } from '../../../packages/discovery/src/consul/env.js';
import { createConsulRegistrar } from '../../../packages/discovery/src/consul/registrar.js';
import { createConsulResolver } from '../../../packages/discovery/src/consul/resolver.js';
import { type ConsulDouble, startConsulDouble } from '../../consul-double/server.js';
import { requireBinary } from '../../support/require-binary.js';
import { Watcher } from './helpers.js';

const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function registerOne(d: ConsulDouble, env: Record<string, string>): Promise<void> {
  const options = consulOptionsFromEnv(env);
  if (!options) throw new Error('no options');
  const reg = createConsulRegistrar(options);
  closers.push(() => reg.close());
  await reg.register({
    service: 'tx',
    id: 'tx-1',
    address: '10.0.0.1',
    port: 80,
    check: { kind: 'ttl', ttlMs: 60_000 },
  });
  expect(d.agentServices()['tx-1']).toBeDefined();
  const r = createConsulResolver({ ...options, waitMs: 5_000, minIntervalMs: 0 });
  closers.push(() => r.close());
  const w = new Watcher(r, 'tx');
  closers.push(() => w.dispose());
  const u = await w.endpoints((ids) => ids.length === 1);
  expect(u.set.endpoints[0]?.address).toBe('10.0.0.1');
}

describe('Consul transports (double)', () => {
  it('CONSUL_HTTP_ADDR=unix:///path: HTTP over a unix socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'consul-sock-'));
    const d = await startConsulDouble({ socketPath: join(dir, 'consul.sock') });
    closers.push(() => d.close());
    await registerOne(d, { CONSUL_HTTP_ADDR: d.address });
    expect(d.requests.every((r) => r.headers.host === 'localhost')).toBe(true);
  });

  it('CONSUL_HTTP_ADDR with a path prefix', async () => {
    const d = await startConsulDouble();
    closers.push(() => d.close());
    const r = createConsulResolver({
      address: `http://${d.address}/proxy`,
      waitMs: 5_000,
      minIntervalMs: 0,
      backoff: { baseMs: 5, capMs: 10 },
    });
    closers.push(() => r.close());
    const w = new Watcher(r, 'x');
    closers.push(() => w.dispose());
    const e = await w.error();
    expect(d.requests[0]?.path).toBe('/proxy/v1/health/service/x');
    expect(e.error.details.status).toBe(404);
    expect(e.error.message).toContain('Invalid URL path');
  });

  it('CONSUL_HTTP_TOKEN_FILE is sent as X-Consul-Token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'consul-token-'));
    writeFileSync(join(dir, 'token'), 'file-token\n');
    const d = await startConsulDouble({
      acl: { defaultPolicy: 'deny', tokens: { 'file-token': { policy: 'write' } } },
    });
    closers.push(() => d.close());
    await registerOne(d, { CONSUL_HTTP_ADDR: d.address, CONSUL_HTTP_TOKEN_FILE: join(dir, 'token') });
    expect(d.requests.every((r) => r.headers['x-consul-token'] === 'file-token')).toBe(true);
  });

  it('CONSUL_HTTP_AUTH is sent as HTTP basic auth on every request (#12)', async () => {
    const d = await startConsulDouble();
    closers.push(() => d.close());
    await registerOne(d, { CONSUL_HTTP_ADDR: d.address, CONSUL_HTTP_AUTH: 'ops:s3cr:et' });
    const expected = `Basic ${Buffer.from('ops:s3cr:et').toString('base64')}`;
    expect(d.requests.length).toBeGreaterThan(1);
    expect(d.requests.every((r) => r.headers.authorization === expected)).toBe(true);
  });

  const openssl = requireBinary('openssl', 'Debian package openssl');
  describe.skipIf(!openssl.available)(`HTTPS and mutual TLS ${openssl.skipReason}`, () => {
    it('CONSUL_CACERT, CONSUL_CLIENT_CERT/KEY, CONSUL_TLS_SERVER_NAME', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'consul-tls-'));
      const f = (n: string) => join(dir, n);
      const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
      const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
      run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=test-ca');
      writeFileSync(f('srv.ext'), 'subjectAltName=DNS:consul.test\n');
      run('req', ...ec, '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=consul.test');
      run(
        'x509',
        '-req',
        '-in',
        'srv.csr',
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        'srv.pem',
        '-days',
        '1',
        '-extfile',
        'srv.ext',
      );
      run('req', ...ec, '-keyout', 'cli.key', '-out', 'cli.csr', '-subj', '/CN=client');
      run(
        'x509',
        '-req',
        '-in',
        'cli.csr',
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        'cli.pem',
        '-days',
        '1',
      );
      const d = await startConsulDouble({
        tls: {
          key: readFileSync(f('srv.key'), 'utf8'),
          cert: readFileSync(f('srv.pem'), 'utf8'),
          ca: readFileSync(f('ca.pem'), 'utf8'),
          requestCert: true,
        },
      });
      closers.push(() => d.close());
      const port = d.address.split(':').at(-1) ?? '';
      await registerOne(d, {
        CONSUL_HTTP_ADDR: `127.0.0.1:${port}`,
        CONSUL_HTTP_SSL: 'true',
        CONSUL_CACERT: f('ca.pem'),
        CONSUL_CLIENT_CERT: f('cli.pem'),
        CONSUL_CLIENT_KEY: f('cli.key'),
        CONSUL_TLS_SERVER_NAME: 'consul.test:8501',
      });
      // CONSUL_CAPATH (a directory of CA files) instead of CONSUL_CACERT; CONSUL_HTTP_SSL=t as Go reads it (#12).
      mkdirSync(f('cas'));
      copyFileSync(f('ca.pem'), f('cas/consul-ca.pem'));
      await registerOne(d, {
        CONSUL_HTTP_ADDR: `127.0.0.1:${port}`,
        CONSUL_HTTP_SSL: 't',
        CONSUL_CAPATH: f('cas'),
        CONSUL_CLIENT_CERT: f('cli.pem'),
        CONSUL_CLIENT_KEY: f('cli.key'),
        CONSUL_TLS_SERVER_NAME: 'consul.test',
      });
      // Without the client certificate the agent refuses the connection.
      const r = createConsulResolver({
        address: d.address,
        tls: { caFile: f('ca.pem'), serverName: 'consul.test' },
        waitMs: 5_000,
        minIntervalMs: 0,
        backoff: { baseMs: 5, capMs: 10 },
      });
      closers.push(() => r.close());
      const w = new Watcher(r, 'tx');
      closers.push(() => w.dispose());
      const e = await w.error();
      expect(e.error.code).toBe('MESH_REGISTRY_UNAVAILABLE');
    });
  });
});

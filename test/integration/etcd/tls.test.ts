import { seededRandom } from '@proxyless/core/testing';
import { afterAll, beforeAll, describe, it } from 'vitest';
import {
  createEtcdRegistrar,
  createEtcdResolver,
  type EtcdRegistrar,
  type EtcdResolver,
  etcdOptionsFromEnv,
} from '../../../packages/discovery/src/etcd/index.js';
import { type EtcdServer, etcdBinary, startEtcd } from '../../support/etcd-server.js';
import { requireBinary } from '../../support/require-binary.js';
import { record, sameIds } from './helpers.js';

const bin = etcdBinary();
const openssl = requireBinary('openssl', 'Debian package openssl');

describe.skipIf(!bin.available || !openssl.available)(
  `etcd over mutual TLS (real etcd) ${bin.skipReason}${openssl.skipReason}`,
  () => {
    let etcd: EtcdServer;
    const owned: Array<EtcdResolver | EtcdRegistrar> = [];

    beforeAll(async () => {
      etcd = await startEtcd({ tls: true });
    });
    afterAll(async () => {
      await Promise.all(owned.map((o) => o.close()));
      await etcd?.stop();
    });

    it('discovers and registers with the options MESH_ETCD_CACERT/CERT/KEY produce', async () => {
      const tls = etcd.tls;
      if (!tls) throw new Error('etcd was not started with TLS');
      // host:port (no scheme) with a CA selects https
      const options = etcdOptionsFromEnv({
        MESH_ETCD_ENDPOINTS: `127.0.0.1:${etcd.clientPort}`,
        MESH_ETCD_CACERT: tls.caFile,
        MESH_ETCD_CERT: tls.certFile,
        MESH_ETCD_KEY: tls.keyFile,
      });
      if (!options) throw new Error('etcd not selected');
      const resolver = createEtcdResolver({
        ...options,
        backoff: { baseMs: 20, capMs: 200 },
        random: seededRandom(2),
      });
      const registrar = createEtcdRegistrar({ ...options, leaseTtlSeconds: 5 });
      owned.push(resolver, registrar);
      await etcd.put('/proxyless/services/tls/a', JSON.stringify({ address: '10.0.0.1', port: 443 }));
      const rec = record(resolver, 'tls');
      await rec.until((u) => sameIds(u, ['a']), 'a over TLS');
      await registrar.register({ service: 'tls', id: 'b', address: '10.0.0.2', port: 443 });
      await rec.until((u) => sameIds(u, ['a', 'b']), 'a, b over TLS');
      rec.dispose();
    });

    it('without a client certificate the handshake fails and the watch reports an error', async () => {
      const tls = etcd.tls;
      if (!tls) throw new Error('etcd was not started with TLS');
      const resolver = createEtcdResolver({
        endpoints: [etcd.endpoint],
        caCert: tls.caFile,
        backoff: { baseMs: 20, capMs: 200 },
        random: seededRandom(2),
      });
      owned.push(resolver);
      const rec = record(resolver, 'tls');
      await rec.until(
        (u) => u.kind === 'error' && u.error.code === 'MESH_REGISTRY_UNAVAILABLE',
        'an error update',
      );
      rec.dispose();
    });
  },
);

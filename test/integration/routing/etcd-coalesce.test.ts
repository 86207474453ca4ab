/**
 * A burst of etcd puts under /proxyless/config/ is validated and compiled once, not once per
 * put (each compile of a large snapshot blocks the event loop), and the last state always wins.
 * Real etcd; the mesh runs on a VirtualClock, so nothing is handed over before the test lets
 * virtual time pass.
 */
import { VirtualClock } from '@proxyless/core/testing';
import { createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type EtcdServer, etcdBinary, startEtcd } from '../../support/etcd-server.js';
import { applied, load, type Servers, startServers, webEntries } from './scenario.js';

const bin = etcdBinary();

describe.skipIf(!bin.available)(
  `etcd config entries: a burst of puts compiles once ${bin.skipReason}`,
  () => {
    let etcd: EtcdServer;
    let servers: Servers;
    let mesh: Mesh | undefined;
    const putEntries = async (entries: unknown[]): Promise<void> => {
      for (const e of entries) {
        const { Kind, Name } = e as { Kind: string; Name: string };
        await etcd.put(`/proxyless/config/${Kind}/${Name}`, JSON.stringify(e));
      }
    };
    const splitter = (v2Weight: number): unknown =>
      webEntries(v2Weight).find((e) => (e as { Kind: string }).Kind === 'service-splitter');

    beforeAll(async () => {
      [etcd, servers] = await Promise.all([startEtcd(), startServers()]);
      const ep = (s: { host: string; port: number }, version: string) =>
        JSON.stringify({ address: s.host, port: s.port, metadata: { version } });
      await etcd.put('/proxyless/services/web/v1', ep(servers.v1, 'v1'));
      await etcd.put('/proxyless/services/web/v2', ep(servers.v2, 'v2'));
      await putEntries(webEntries(0));
    });
    afterEach(async () => {
      await mesh?.close();
      mesh = undefined;
    });
    afterAll(async () => {
      await servers?.close();
      await etcd?.stop();
    });

    it('hands a burst of 40 puts over as one snapshot, the last one', async () => {
      const clock = new VirtualClock();
      mesh = createMesh({ env: { MESH_REGISTRY: 'etcd', MESH_ETCD_ENDPOINTS: etcd.endpoint }, clock });
      const m = mesh;
      // The listing is handed over at once.
      await applied(m, 'etcd');
      expect((await load(m, 'http://web/', 20)).by).toEqual({ v1: 20 });
      const versions: number[] = [];
      m.onEvent((e: MeshEvent) => {
        if (e.type === 'config_applied' && e.source === 'etcd') versions.push(e.version);
      });
      for (let i = 1; i <= 40; i++)
        await etcd.put(
          '/proxyless/config/service-splitter/web',
          JSON.stringify(splitter(i === 40 ? 100 : i)),
        );
      const last = await etcd.revision();
      // Nothing compiled while the puts came in (virtual time has not moved)...
      expect(versions).toEqual([]);
      // ...and once the changes pause, the newest snapshot is compiled, once or, if the last
      // events arrived late, twice — not once per put.
      await expect
        .poll(
          async () => {
            if (!(await clock.next())) await clock.advance(20);
            return versions.at(-1);
          },
          { timeout: 10_000, interval: 20 },
        )
        .toBe(last);
      expect(versions.length).toBeLessThanOrEqual(2);
      expect((await load(m, 'http://web/', 20)).by).toEqual({ v2: 20 });
    });
  },
);

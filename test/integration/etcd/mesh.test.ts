import { EventEmitter } from 'node:events';
import { createMesh, type Mesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createEtcdRegistrar,
  createEtcdResolver,
  type EtcdRegistrar,
  type EtcdResolver,
} from '../../../packages/discovery/src/etcd/index.js';
import { type EtcdServer, etcdBinary, startEtcd } from '../../support/etcd-server.js';
import { startServer, type TestServer } from '../../support/http-server.js';
import { nextEvent } from '../../support/mesh-events.js';

/** A signal source and an exit function for `manageSignals`, and the exit code it gives. */
function fakeProcess(): { signals: EventEmitter; exit: (code: number) => void; exitCode: Promise<number> } {
  let exit: (code: number) => void = () => undefined;
  const exitCode = new Promise<number>((r) => {
    exit = r;
  });
  return { signals: new EventEmitter(), exit: (code) => exit(code), exitCode };
}

const bin = etcdBinary();

/** Wait (bounded) until the resolver's current set satisfies `check`; driven by resolver updates. */
function untilSet(
  resolver: EtcdResolver,
  service: string,
  check: (ids: string[]) => boolean,
  what: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const test = (): boolean => {
      const set = resolver.current(service);
      return (
        set !== undefined &&
        !set.stale &&
        check(
          set.endpoints
            .filter((e) => e.health !== 'critical')
            .map((e) => e.id)
            .sort(),
        )
      );
    };
    const timer = setTimeout(() => {
      sub.dispose();
      reject(new Error(`timed out waiting for ${what}`));
    }, 15_000);
    const sub = resolver.watch(service, () => {
      if (test()) {
        clearTimeout(timer);
        queueMicrotask(() => sub.dispose());
        resolve();
      }
    });
  });
}

describe.skipIf(!bin.available)(
  `mesh.fetch over etcd discovery and registration (real etcd) ${bin.skipReason}`,
  () => {
    let etcd: EtcdServer;
    let servers: TestServer[] = [];
    let resolver: EtcdResolver;
    let registrar: EtcdRegistrar;
    let mesh: Mesh;
    const service = `greeter-${process.pid}`;
    const host = `${service}.etcd.test`;

    beforeAll(async () => {
      etcd = await startEtcd();
      servers = await Promise.all(['a', 'b'].map((n) => startServer(n)));
      registrar = createEtcdRegistrar({ endpoints: [etcd.endpoint], leaseTtlSeconds: 5 });
      resolver = createEtcdResolver({
        endpoints: [etcd.endpoint],
        suffix: 'etcd.test',
        backoff: { baseMs: 20, capMs: 200 },
      });
      mesh = createMesh({ env: {}, resolvers: [resolver] });
    });
    afterAll(async () => {
      await mesh?.close();
      await resolver?.close();
      await registrar?.close();
      await Promise.all(servers.map((s) => s.close()));
      await etcd?.stop();
    });

    it('discovers registered instances, drains an unhealthy one and keeps routing through an etcd outage', async () => {
      const [a, b] = servers as [TestServer, TestServer];
      const instA = await registrar.register({ service, id: 'a', address: '127.0.0.1', port: a.port });
      await registrar.register({ service, id: 'b', address: '127.0.0.1', port: b.port });

      const seen = new Set<string>();
      for (let i = 0; i < 10; i++) {
        const res = await mesh.fetch(`http://${host}/`);
        expect(res.status).toBe(200);
        seen.add(await res.text());
      }
      expect([...seen].sort()).toEqual(['a', 'b']);

      const drained = untilSet(resolver, service, (ids) => ids.join() === 'b', 'a marked critical');
      await instA.markUnhealthy('draining');
      await drained;
      for (let i = 0; i < 5; i++) {
        const res = await mesh.fetch(`http://${host}/`);
        expect(await res.text()).toBe('b');
      }

      const failed = nextEvent(mesh, (e) => e.type === 'resolver_error');
      await etcd.halt();
      const event = await failed;
      if (event.type !== 'resolver_error') throw new Error('expected resolver_error');
      expect(event.error.code).toBe('MESH_REGISTRY_UNAVAILABLE');
      expect(mesh.endpoints(service)?.stale).toBe(true);
      for (let i = 0; i < 4; i++) {
        const res = await mesh.fetch(`http://${host}/`);
        expect(res.status).toBe(200);
        expect(await res.text()).toBe('b');
      }

      await etcd.resume();
      const back = untilSet(
        resolver,
        service,
        (ids) => ids.join() === 'a,b',
        'both instances after the restart',
      );
      // bring `a` back: deregister the drained instance and register it again as passing
      await instA.deregister();
      await registrar.register({ service, id: 'a', address: '127.0.0.1', port: a.port });
      await back;
      expect(mesh.endpoints(service)?.stale).toBe(false);
    });

    it('is selected and configured by environment variables alone (MESH_REGISTRY=etcd)', async () => {
      const [a] = servers as [TestServer, TestServer];
      const name = `envsvc${process.pid}`;
      const inst = await registrar.register({
        service: name,
        id: 'env-a',
        address: '127.0.0.1',
        port: a.port,
      });
      const fromEnv = createMesh({ env: { MESH_REGISTRY: 'etcd', MESH_ETCD_ENDPOINTS: etcd.endpoint } });
      try {
        const res = await fromEnv.fetch(`http://${name}/`);
        expect(res.status).toBe(200);
        expect(await res.text()).toBe('a');
        expect(fromEnv.endpoints(name)?.source).toBe('etcd');
        // `localhost` is never a service, even with a registry that matches bare names.
        expect(fromEnv.services()).not.toContain('localhost');
      } finally {
        await fromEnv.close();
        await inst.deregister();
      }
    });

    it('mesh.register() announces this service; SIGTERM deregisters, drains, closes and exits', async () => {
      const [, b] = servers as [TestServer, TestServer];
      const name = `self${process.pid}`;
      const env = { MESH_REGISTRY: 'etcd', MESH_ETCD_ENDPOINTS: etcd.endpoint };
      const server = createMesh({ env, serviceName: name });
      const client = createMesh({ env });
      const { signals, exit, exitCode } = fakeProcess();
      try {
        await server.register(
          { service: name, id: 'self-1', address: '127.0.0.1', port: b.port },
          { manageSignals: true, drainMs: 50, process: signals, exit },
        );
        const res = await client.fetch(`http://${name}/`);
        expect(await res.text()).toBe('b');
        const gone = nextEvent(client, (e) => e.type === 'endpoints_changed' && e.set.endpoints.length === 0);
        signals.emit('SIGTERM', 'SIGTERM');
        await gone; // deregistered before the drain ends
        expect(await exitCode).toBe(0);
        await expect(server.request(`http://${name}/`)).rejects.toMatchObject({ code: 'MESH_CLOSED' });
      } finally {
        await server.close();
        await client.close();
      }
    });

    it('SIGTERM exits even while a response body streams without end: the close after the drain is bounded', async () => {
      const [, b] = servers as [TestServer, TestServer];
      // A server-sent-events-like response: one chunk, then nothing, never an end.
      const endless = await startServer('sse', (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: hello\n\n');
      });
      const name = `sse${process.pid}`;
      const env = { MESH_REGISTRY: 'etcd', MESH_ETCD_ENDPOINTS: etcd.endpoint };
      const server = createMesh({
        env,
        serviceName: name,
        services: { events: { endpoints: endless.address } },
      });
      const { signals, exit, exitCode } = fakeProcess();
      try {
        await server.register(
          { service: name, id: 'sse-1', address: '127.0.0.1', port: b.port },
          {
            manageSignals: true,
            drainMs: 20,
            closeTimeoutMs: 100,
            process: signals,
            exit,
          },
        );
        const res = await server.fetch('http://events/stream');
        const reader = (res.body as ReadableStream<Uint8Array>).getReader();
        expect(new TextDecoder().decode((await reader.read()).value)).toBe('data: hello\n\n');
        const cut = reader.read().then(
          () => 'ended',
          () => 'cut',
        );
        signals.emit('SIGTERM', 'SIGTERM');
        // Before: close() waited for the body forever, and the process never exited.
        expect(await exitCode).toBe(0);
        expect(await cut).toBe('cut');
      } finally {
        await server.close();
        await endless.close();
      }
    });

    it('mesh.register() without a registry says which variable to set', async () => {
      const m = createMesh({ env: {} });
      try {
        await expect(m.register({ service: 'x', address: '127.0.0.1', port: 1 })).rejects.toThrow(
          /MESH_REGISTRY/,
        );
      } finally {
        await m.close();
      }
    });
  },
);

/**
 * The client's event loop is blocked (a long synchronous task, a GC pause, a debugger, a stopped
 * process) while its calls are in flight, and their responses arrive meanwhile: they sit unread
 * in the sockets. When the loop runs again, Node runs every timer that fell due before it reads
 * any socket. The calls' timeouts fired first: every call failed with `MESH_TIMEOUT` although its
 * answer had come in time, and with retries on, each per-try timeout was charged to the endpoint
 * (an ejection after five). Measured on loopback, three endpoints answering in 20 ms, 30 callers,
 * a 3 s stall: 30 failures charged, one endpoint ejected for 30 s; with an overall `timeout` and
 * no retry, 30 calls failed. Timers of the real clock now run their callbacks after the I/O the
 * loop already has, as undici runs its connect timeout: those calls succeed and nothing is charged.
 *
 * The backend is a real HTTP server on 127.0.0.1 in a worker thread, so it answers while the
 * test's own thread is blocked; shared memory orders the steps (no sleep): the backend holds its
 * answers until every request has arrived and the test thread is about to block (a message, then shared memory), then answers;
 * the test thread blocks until those answers are written and the calls' timeouts are past.
 */
import { Worker } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { createMesh, type Mesh, type MeshEvent } from 'proxyless';
import { afterEach, describe, expect, it } from 'vitest';

/** Shared phases: 0 waiting for requests, 1 all arrived, 2 go, 3 answers written. */
const ALL_ARRIVED = 1;
const GO = 2;
const ANSWERED = 3;

const BACKEND = `
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');
const state = new Int32Array(workerData.shared);
const held = [];
const handler = (req, res) => {
  req.resume();
  if (Atomics.load(state, 0) >= ${ANSWERED}) { res.end('late'); return; }
  held.push(res);
  if (held.length < workerData.expected) return;
  Atomics.store(state, 0, ${ALL_ARRIVED});
  parentPort.postMessage('all arrived');
  Atomics.wait(state, 0, ${ALL_ARRIVED});
  let left = held.length;
  for (const r of held.splice(0)) r.end('ok', () => {
    if (--left === 0) { Atomics.store(state, 0, ${ANSWERED}); Atomics.notify(state, 0); }
  });
};
// Two servers (two endpoints), one set of held answers.
const servers = [http.createServer(handler), http.createServer(handler)];
let listening = 0;
for (const server of servers) server.listen(0, '127.0.0.1', () => {
  if (++listening === servers.length) parentPort.postMessage(servers.map((x) => x.address().port));
});
`;

interface Backend {
  /** The first server's port; `ports` has both. */
  port: number;
  ports: number[];
  state: Int32Array;
  worker: Worker;
}

const workers: Worker[] = [];
const meshes: Mesh[] = [];
afterEach(async () => {
  for (const m of meshes.splice(0)) await m.destroy();
  for (const w of workers.splice(0)) await w.terminate();
});

async function backend(expected: number): Promise<Backend> {
  const shared = new SharedArrayBuffer(4);
  const worker = new Worker(BACKEND, { eval: true, workerData: { shared, expected } });
  workers.push(worker);
  const ports = await new Promise<number[]>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return { port: ports[0]!, ports, state: new Int32Array(shared), worker };
}

/**
 * Once every request has reached the backend: let it answer, and block this thread until the
 * answers are written and `pastMs` (performance.now() time) has gone by — every call's timer is
 * then due, and every answer unread.
 */
async function stallWhileAnswered(b: Backend, pastMs: number): Promise<void> {
  await new Promise((resolve) => b.worker.once('message', resolve));
  expect(Atomics.load(b.state, 0)).toBe(ALL_ARRIVED);
  Atomics.store(b.state, 0, GO);
  Atomics.notify(b.state, 0);
  expect(Atomics.wait(b.state, 0, GO, 10_000)).not.toBe('timed-out');
  expect(Atomics.load(b.state, 0)).toBe(ANSWERED);
  while (performance.now() < pastMs) {
    // The event loop stays blocked, as under a long synchronous task.
  }
}

const outcome = async (mesh: Mesh): Promise<string> => {
  try {
    const res = await mesh.request('http://api/');
    return `${res.statusCode} ${await res.body.text()}`;
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
};

describe('an event-loop stall while answers arrive', () => {
  const CALLS = 8;

  it('does not fail calls whose answers came in time (overall timeout, no retry)', async () => {
    const b = await backend(CALLS);
    const mesh = createMesh({
      env: {},
      services: { api: { endpoints: `127.0.0.1:${b.port}`, timeout: '200ms', retry: false } },
    });
    meshes.push(mesh);
    const started = performance.now();
    const calls = Array.from({ length: CALLS }, () => outcome(mesh));
    await stallWhileAnswered(b, started + 400);
    expect(await Promise.all(calls)).toEqual(Array(CALLS).fill('200 ok'));
  });

  it('charges nothing to the endpoint for per-try timeouts that fell due during the stall', async () => {
    const b = await backend(CALLS);
    const mesh = createMesh({
      env: {},
      services: {
        api: {
          endpoints: `127.0.0.1:${b.port}`,
          perTryTimeout: '200ms',
          outlierDetection: { consecutive5xx: 5, consecutiveGatewayFailure: 5 },
        },
      },
    });
    meshes.push(mesh);
    const ejections: MeshEvent[] = [];
    mesh.onEvent((e) => {
      if (e.type === 'balancer' && e.event.type === 'eject') ejections.push(e);
    });
    const started = performance.now();
    const calls = Array.from({ length: CALLS }, () => outcome(mesh));
    await stallWhileAnswered(b, started + 400);
    // Every call got the answer it was sent first (a retry would have got 'late').
    expect(await Promise.all(calls)).toEqual(Array(CALLS).fill('200 ok'));
    const endpoint = mesh.stats('api')?.endpoints[0];
    expect(endpoint?.failures).toBe(0);
    expect(endpoint?.ejected).toBe(false);
    expect(ejections).toEqual([]);
  });

  it('sends no hedge for calls whose answers came during the stall', async () => {
    const b = await backend(CALLS);
    const registry = new Registry();
    const mesh = createMesh({
      env: {},
      metrics: { registry },
      services: {
        api: { endpoints: b.ports.map((p) => `127.0.0.1:${p}`).join(','), hedge: { delay: '100ms' } },
      },
    });
    meshes.push(mesh);
    const started = performance.now();
    const calls = Array.from({ length: CALLS }, () => outcome(mesh));
    await stallWhileAnswered(b, started + 400);
    expect(await Promise.all(calls)).toEqual(Array(CALLS).fill('200 ok'));
    // One attempt per call: the hedges that fell due during the stall were never sent.
    const attempts = (await registry.metrics())
      .split('\n')
      .filter((l) => l.startsWith('mesh_attempts_total{'))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    expect(attempts).toBe(CALLS);
  });
});

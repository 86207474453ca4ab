/**
 * A burst of concurrent calls to one service, with the defaults: what plain undici and `fetch`
 * queue and serve must not fail through the mesh. With Envoy's default of 1024 requests in flight
 * (`circuitBreaker.maxRequests`), a `Promise.all` over 1,100 items failed its last 76 calls with
 * `MESH_CIRCUIT_OPEN` at once, the backend idle (976 of 2,000 on loopback). The default is now
 * unbounded, as Istio sets Envoy's threshold; a service that wants the bound sets it.
 */
import { createMesh, type Mesh } from 'proxyless';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

const BURST = 1_100;

const meshes: Mesh[] = [];
const servers: TestServer[] = [];
afterEach(async () => {
  for (const m of meshes.splice(0)) await m.close();
  for (const s of servers.splice(0)) await s.close();
});

async function burst(mesh: Mesh, n: number): Promise<Record<string, number>> {
  // Started in one synchronous loop: every call is in flight before any answer can come.
  const calls = Array.from({ length: n }, async () => {
    try {
      const res = await mesh.request('http://api/');
      await res.body.dump();
      return String(res.statusCode);
    } catch (e) {
      return (e as { code?: string }).code ?? String(e);
    }
  });
  const tally: Record<string, number> = {};
  for (const outcome of await Promise.all(calls)) tally[outcome] = (tally[outcome] ?? 0) + 1;
  return tally;
}

describe('a burst of concurrent calls with the default policies', () => {
  it(`serves all ${BURST} calls of one burst, as undici would (queued on 8 connections)`, async () => {
    const server = await startServer('api');
    servers.push(server);
    const mesh = createMesh({
      env: {},
      connectionsPerEndpoint: 8,
      services: { api: { endpoints: server.address } },
    });
    meshes.push(mesh);
    expect(await burst(mesh, 1)).toEqual({ 200: 1 });
    expect(await burst(mesh, BURST)).toEqual({ 200: BURST });
    expect(mesh.config('api').resilience.circuitBreaker?.maxRequests).toBe(4_294_967_295);
  });

  it('still bounds the calls in flight when a service sets maxRequests (Envoy 1024)', async () => {
    const server = await startServer('api');
    servers.push(server);
    const mesh = createMesh({
      env: {},
      connectionsPerEndpoint: 8,
      services: { api: { endpoints: server.address, circuitBreaker: { maxRequests: 1024 } } },
    });
    meshes.push(mesh);
    expect(await burst(mesh, 1)).toEqual({ 200: 1 });
    expect(await burst(mesh, BURST)).toEqual({ 200: 1024, MESH_CIRCUIT_OPEN: BURST - 1024 });
  });
});

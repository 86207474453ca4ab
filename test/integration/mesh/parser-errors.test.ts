/**
 * A response undici's parser refuses (an invalid status line or header) is the endpoint's doing,
 * as a reset is: `MESH_UPSTREAM_RESET` with undici's `HTTPParserError` as cause, retried for an
 * idempotent request, and counted by the breaker and outlier detection. undici 7 leaves that
 * error's `code` unset, so it is recognised by name. Real loopback servers.
 */
import net from 'node:net';
import { MeshError } from 'proxyless';
import { request as undiciRequest } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { Opened, rejection, within } from './data-plane-support.js';

const opened = new Opened();
afterEach(() => opened.closeAll());

/** A server answering every request with `reply` and closing; counts the requests it read. */
async function garbageServer(reply: string): Promise<{ address: string; requests(): number }> {
  let requests = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      while (buf.includes('\r\n\r\n')) {
        buf = buf.slice(buf.indexOf('\r\n\r\n') + 4);
        requests++;
        socket.end(reply);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  opened.closers.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as net.AddressInfo;
  return { address: `127.0.0.1:${port}`, requests: () => requests };
}

const REPLIES: [string, string][] = [
  ['an invalid status line', 'HTTP/1.1 abc Nope\r\ncontent-length: 0\r\n\r\n'],
  ['an invalid header', 'HTTP/1.1 200 OK\r\nbad header\r\ncontent-length: 0\r\n\r\n'],
];

describe('a response undici cannot parse', () => {
  for (const [what, reply] of REPLIES) {
    it(`maps ${what} to MESH_UPSTREAM_RESET with undici's HTTPParserError as cause`, async () => {
      const bad = await garbageServer(reply);
      const direct = await rejection(within(undiciRequest(`http://${bad.address}/`), 5000, 'undici'));
      const m = opened.meshFor([bad], { retry: false, circuitBreaker: false });
      const error = await rejection(within(m.request('http://api/'), 5000, 'mesh.request'));
      expect(MeshError.is(error, 'MESH_UPSTREAM_RESET')).toBe(true);
      const e = error as MeshError;
      expect(e.cause).toBeInstanceOf(Error);
      expect((e.cause as Error).name).toBe('HTTPParserError');
      expect((e.cause as Error).name).toBe((direct as Error).name);
      expect((e.cause as Error).message).toBe((direct as Error).message);
      expect(e.details).toMatchObject({
        service: 'api',
        endpoint: bad.address,
        phase: 'request',
        bodySent: false,
        errorCode: 'HTTPParserError',
      });
    });
  }

  it('retries an idempotent request on another endpoint, as after a reset', async () => {
    const bad = await garbageServer(REPLIES[0]![1]);
    const good = await opened.server('good');
    const m = opened.meshFor([bad, good], {
      retry: { maxRetries: 2, retryOn: ['reset'] },
      loadBalancer: { policy: 'round_robin' },
      outlierDetection: false,
    });
    for (let i = 0; i < 6; i++) {
      const res = await within(m.request('http://api/'), 5000, `call ${i}`);
      expect(res.statusCode).toBe(200);
      await res.body.text();
    }
    expect(bad.requests()).toBeGreaterThan(0);
  });

  it('counts against the endpoint: the breaker opens after the threshold', async () => {
    const bad = await garbageServer(REPLIES[1]![1]);
    const m = opened.meshFor([bad], {
      retry: false,
      outlierDetection: false,
      circuitBreaker: { volumeThreshold: 3, errorThresholdPercentage: 50 },
    });
    const codes: string[] = [];
    for (let i = 0; i < 8; i++) {
      const error = await rejection(within(m.request('http://api/'), 5000, `call ${i}`));
      codes.push(MeshError.is(error) ? error.code : String((error as Error).name));
    }
    expect(codes.slice(0, 3)).toEqual(['MESH_UPSTREAM_RESET', 'MESH_UPSTREAM_RESET', 'MESH_UPSTREAM_RESET']);
    expect(codes.at(-1)).toBe('MESH_CIRCUIT_OPEN');
    expect(bad.requests()).toBeLessThan(8);
  });
});

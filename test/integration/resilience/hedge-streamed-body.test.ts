/**
 * Hedging a request whose body is a stream (issue #9, defect 5, re-verified): undici's fetch sends
 * every body as a one-shot async iterator, so a `PUT` through `mesh.fetch` or the global `fetch`
 * was never hedged — it waited on a slow endpoint however long it took. A streamed body is now
 * kept as the first attempt sends it, and a hedge sends it again once it has been read whole.
 */
import type http from 'node:http';
import { Readable } from 'node:stream';
import { createMesh, type Mesh } from 'proxyless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let slow: TestServer;
let fast: TestServer;
let mesh: Mesh;
const held: http.ServerResponse[] = [];
const bodies: Record<string, string[]> = { slow: [], fast: [] };

function recording(name: 'slow' | 'fast') {
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies[name]!.push(Buffer.concat(chunks).toString());
      if (name === 'slow')
        held.push(res); // never answers while the test runs
      else res.end(`fast:${Buffer.concat(chunks).toString()}`);
    });
  };
}

beforeAll(async () => {
  slow = await startServer('slow', recording('slow'));
  fast = await startServer('fast', recording('fast'));
  mesh = createMesh({
    env: {},
    passthrough: false,
    services: {
      api: {
        endpoints: [slow.address, fast.address],
        loadBalancer: { policy: 'round_robin' },
        outlierDetection: false,
        hedge: { delay: '50ms' },
      },
    },
  });
});
afterAll(async () => {
  await mesh.destroy();
  for (const res of held) res.destroy();
  await slow.close();
  await fast.close();
});

/** Four calls: round robin sends the first attempt of at least two of them to the slow endpoint. */
async function four(call: (i: number) => Promise<string>): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < 4; i++) out.push(await call(i));
  return out;
}

describe('a streamed request body is hedged', () => {
  it('mesh.fetch PUT with a string body (sent by fetch as a stream)', async () => {
    bodies.slow = [];
    const answers = await four(async (i) => {
      const res = await mesh.fetch('http://api/', {
        method: 'PUT',
        body: `b${i}`,
        signal: AbortSignal.timeout(10_000),
      });
      return res.text();
    });
    expect(answers).toEqual(['fast:b0', 'fast:b1', 'fast:b2', 'fast:b3']);
    // The slow endpoint got whole bodies too: the attempts it held were first attempts.
    expect(bodies.slow!.length).toBeGreaterThanOrEqual(2);
    for (const b of bodies.slow!) expect(['b0', 'b1', 'b2', 'b3']).toContain(b);
  });

  it('mesh.request PUT with a Readable body', async () => {
    const answers = await four(async (i) => {
      const res = await mesh.request('http://api/', {
        method: 'PUT',
        body: Readable.from([Buffer.from(`r${i}-`), Buffer.from('x')]),
        signal: AbortSignal.timeout(10_000),
      });
      return res.body.text();
    });
    expect(answers).toEqual(['fast:r0-x', 'fast:r1-x', 'fast:r2-x', 'fast:r3-x']);
  });
});

/**
 * Hedging sees the whole exchange as plain undici does: undici's `onResponseStarted` (fetch's
 * Resource Timing `responseStart`) reaches the caller for the attempt that wins; a 1xx goes to the
 * caller at once and makes its attempt the call's (Envoy resets the other upstream requests once it
 * has proxied a 1xx); and `mesh.request(...).endpoint` names the endpoint that answered, not the
 * last one a hedge picked. Real loopback servers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { TestServer } from '../../support/http-server.js';
import { Opened, within } from './data-plane-support.js';

const opened = new Opened();
afterEach(() => opened.closeAll());

/** Dispatch with an old-style handler (as Node 20's fetch does); true when `onResponseStarted` ran. */
function sawResponseStarted(d: Dispatcher, origin: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    let saw = false;
    d.dispatch({ origin, path: '/', method: 'GET' }, {
      onConnect() {},
      onResponseStarted() {
        saw = true;
      },
      onHeaders: () => true,
      onData: () => true,
      onComplete: () => resolve(saw),
      onError: reject,
    } as Dispatcher.DispatchHandler);
  });
}

describe('hedging and the whole exchange', () => {
  it("passes undici's onResponseStarted to the caller, so fetch times the response", async () => {
    const s = await opened.server('a');
    const m = opened.meshFor([s], { hedge: { delay: '5s' } });
    expect(await within(sawResponseStarted(m.dispatcher, 'http://api'), 5000, 'dispatch')).toBe(true);

    performance.clearResourceTimings();
    const r = await m.fetch('http://api/timing');
    await r.text();
    // fetch reports the timing entry when the body is fully read (after the response ends).
    await new Promise((resolve) => setImmediate(resolve));
    const entry = performance.getEntriesByType('resource').find((e) => e.name === 'http://api/timing') as
      | { responseStart: number; requestStart: number }
      | undefined;
    expect(entry).toBeDefined();
    expect(entry!.responseStart).toBeGreaterThan(0);
    expect(entry!.responseStart).toBeGreaterThanOrEqual(entry!.requestStart);
  });

  it('passes a 1xx on at once and keeps its attempt: no hedge is sent after it', async () => {
    let requests = 0;
    const early = (name: string) =>
      opened.server(name, (req, res) => {
        requests++;
        req.resume();
        res.writeEarlyHints({ link: '</a.css>; rel=preload' });
        setTimeout(() => res.end(name), 600);
      });
    const servers = [await early('a'), await early('b')];
    const m = opened.meshFor(servers, { hedge: { delay: '200ms' }, loadBalancer: { policy: 'round_robin' } });
    const infos: number[] = [];
    const r = await within(
      m.request('http://api/x', { onInfo: (i: { statusCode: number }) => infos.push(i.statusCode) }),
      5000,
      'mesh.request',
    );
    const body = await r.body.text();
    expect(infos).toEqual([103]);
    expect(r.statusCode).toBe(200);
    expect(['a', 'b']).toContain(body);
    expect(requests).toBe(1);
  });

  it('reports the endpoint that answered when the first attempt beats its hedge', async () => {
    // The endpoint that gets a call's first request answers it after 150 ms; the hedge sent to the
    // other one 20 ms in never gets an answer (it loses and is cancelled).
    let first: string | undefined;
    const handler = (req: IncomingMessage, res: ServerResponse, s: TestServer): void => {
      req.resume();
      if (first !== undefined) return;
      first = s.address;
      setTimeout(() => res.end(s.name), 150);
    };
    const servers = [await opened.server('a', handler), await opened.server('b', handler)];
    const m = opened.meshFor(servers, { hedge: { delay: '20ms' } });
    for (let i = 0; i < 3; i++) {
      first = undefined;
      const r = await within(m.request('http://api/x'), 5000, `call ${i}`);
      await r.body.text();
      expect(first).toBeDefined();
      expect(r.endpoint).toBe(first);
    }
    expect(servers[0]!.requests + servers[1]!.requests).toBe(6);
  });
});

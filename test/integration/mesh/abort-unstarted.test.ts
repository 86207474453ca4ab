/**
 * A call none of whose stages answers its caller at once (retries off, no timeout, hedge or wait)
 * is started by undici only when a connection takes it. Before, the caller got no controller until
 * then: an abort of a call queued behind busy connections (fetch can only abort through the
 * controller it is given) kept its breaker slot and in-flight count until undici reached it, so
 * other calls failed `MESH_CIRCUIT_OPEN`; `close({ timeout })` and `destroy(err)` could not abort
 * it either, and it failed later with undici's `ClientDestroyedError`. The caller is started
 * inside `dispatch()` now, as undici starts a request. Real loopback server.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PolicyOptions } from 'proxyless';
import { Agent, type Dispatcher } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Opened, rejection, within } from './data-plane-support.js';

const opened = new Opened();
afterEach(() => opened.closeAll());

/** A server whose `/slow` answers only when released; every path it saw is listed. */
async function holdingServer() {
  const seen: string[] = [];
  const held: ServerResponse[] = [];
  const server = await opened.server('a', (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    seen.push(req.url ?? '');
    if (req.url === '/slow') held.push(res);
    else res.end('ok');
  });
  const release = () => {
    for (const res of held.splice(0)) res.end('slow done');
  };
  return { server, seen, held, release };
}

const ONE_CONNECTION: PolicyOptions = { retry: false, circuitBreaker: { maxConnections: 1, maxRequests: 2 } };

describe('a call queued behind busy connections, with no stage that answers at once', () => {
  it.each([
    ['mesh.fetch', 'fetch'],
    ['mesh.request', 'request'],
  ] as const)('%s aborted while queued releases its slot at once and is never sent', async (_what, how) => {
    const { server, seen, held, release } = await holdingServer();
    const mesh = opened.meshFor([server], ONE_CONNECTION);
    const slow = mesh.request('http://api/slow');
    await vi.waitFor(() => expect(held).toHaveLength(1));
    const ac = new AbortController();
    const queued =
      how === 'fetch'
        ? mesh.fetch('http://api/queued', { signal: ac.signal })
        : mesh.request('http://api/queued', { signal: ac.signal });
    await vi.waitFor(() => expect(mesh.stats('api')?.inFlight).toBe(2));
    ac.abort();
    // Released as the caller is answered: the breaker's maxRequests slot and the in-flight count.
    expect(mesh.stats('api')?.inFlight).toBe(1);
    const error = await rejection(queued);
    expect(error.name).toBe('AbortError');
    // Another call is admitted (not MESH_CIRCUIT_OPEN) and waits for the connection.
    const third = mesh.request('http://api/third');
    release();
    await (await slow).body.text();
    expect(await (await within(third, 5000, 'third call')).body.text()).toBe('ok');
    expect(seen).toEqual(['/slow', '/third']);
    expect(mesh.stats('api')?.inFlight).toBe(0);
  });

  it.each([
    ['close({ timeout })', 'MESH_CLOSED'],
    ['destroy(err)', 'my destroy reason'],
  ] as const)('%s aborts it with what shutdown promises', async (how, expected) => {
    const { server, held } = await holdingServer();
    const mesh = opened.meshFor([server], { retry: false, circuitBreaker: { maxConnections: 1 } });
    const slow = mesh.request('http://api/slow');
    await vi.waitFor(() => expect(held).toHaveLength(1));
    const queued = mesh.request('http://api/queued');
    await vi.waitFor(() => expect(mesh.stats('api')?.inFlight).toBe(2));
    const done =
      how === 'destroy(err)' ? mesh.destroy(new Error('my destroy reason')) : mesh.close({ timeout: 50 });
    const error = (await rejection(queued)) as Error & { code?: string };
    expect(how === 'destroy(err)' ? error.message : error.code).toBe(expected);
    await rejection(slow);
    await within(done, 5000, how);
  });

  it('made before the service resolved, aborted once queued: taken back as well (probe20 defect 1)', async () => {
    const { server, seen, held, release } = await holdingServer();
    const mesh = opened.meshFor([server], ONE_CONNECTION);
    // Both calls wait for the first resolution together, then go on to the pool.
    const slow = mesh.request('http://api/slow');
    const ac = new AbortController();
    const queued = mesh.request('http://api/queued', { signal: ac.signal });
    await vi.waitFor(() => expect(held).toHaveLength(1));
    expect(mesh.stats('api')?.inFlight).toBe(2);
    ac.abort();
    expect(mesh.stats('api')?.inFlight).toBe(1);
    expect((await rejection(queued)).name).toBe('AbortError');
    release();
    await (await slow).body.text();
    expect(seen).toEqual(['/slow']);
  });
});

describe('a caller that aborts as it is started', () => {
  /** What a handler that aborts in its start callback sees, and in what order. */
  function abortAtStart(
    dispatcher: Dispatcher,
    origin: string,
    style: 'controller' | 'old',
  ): Promise<string[]> {
    let settle: (log: string[]) => void = () => undefined;
    const done = new Promise<string[]>((r) => {
      settle = r;
    });
    const log = {
      lines: [] as string[],
      push(line: string) {
        this.lines.push(line);
        if (this.lines.length === 2) settle(this.lines);
      },
    };
    const early = new Error('early');
    const handler =
      style === 'controller'
        ? {
            onRequestStart(c: Dispatcher.DispatchController) {
              c.abort(early);
              log.push('abort() returned');
            },
            onResponseStart() {},
            onResponseData() {},
            onResponseEnd() {},
            onResponseError(_c: unknown, e: Error) {
              log.push(`error: ${e.message}`);
            },
          }
        : {
            onConnect(abort: (e?: Error) => void) {
              abort(early);
              log.push('abort() returned');
            },
            onHeaders: () => true,
            onData: () => true,
            onComplete() {},
            onError(e: Error) {
              log.push(`error: ${e.message}`);
            },
          };
    dispatcher.dispatch({ origin, path: '/', method: 'GET' }, handler as Dispatcher.DispatchHandler);
    return within(done, 3000, 'the aborted call');
  }

  it.each(['controller', 'old'] as const)(
    'gets its error before abort() returns, as from undici (%s-style handler), and nothing is sent',
    async (style) => {
      const { server, seen } = await holdingServer();
      const mesh = opened.meshFor([server], {});
      const agent = new Agent();
      opened.closers.push(() => agent.close());
      const direct = await abortAtStart(agent, `http://${server.address}`, style);
      expect(direct).toEqual(['error: early', 'abort() returned']);
      expect(await abortAtStart(mesh.dispatcher, 'http://api', style)).toEqual(direct);
      expect(mesh.stats('api')?.inFlight).toBe(0);
      // A call after it is served: nothing of the aborted one was sent.
      await (await mesh.request('http://api/after')).body.text();
      expect(seen).toEqual(['/after']);
    },
  );
});

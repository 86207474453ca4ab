/**
 * A handler that aborts in `onRequestStart` (undici's controller API allows it) ends the call with
 * its reason through every stage, none started: the fault delay's timer was read before it was
 * armed and the call failed with a ReferenceError instead. Real loopback server.
 */
import type { PolicyOptions } from 'proxyless';
import type { Dispatcher } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { Opened, within } from './data-plane-support.js';

const opened = new Opened();
afterEach(() => opened.closeAll());

const POLICIES: [string, PolicyOptions][] = [
  ['no policies', { retry: false, circuitBreaker: false }],
  ['the defaults', {}],
  ['a fault delay', { faultInjection: { delay: { duration: '1s' } } }],
  ['a timeout', { timeout: '1s' }],
  ['a concurrency limit', { concurrencyLimit: { max: 1 } }],
  ['hedging', { hedge: { delay: '1s' } }],
  ['a rate limit', { rateLimit: { rps: 10 } }],
];

describe('a caller that aborts in onRequestStart', () => {
  it.each(POLICIES)('gets its own reason back, with %s', async (_what, policy) => {
    const server = await opened.server('a');
    const mesh = opened.meshFor([server], policy);
    const reason = new Error('changed my mind');
    const outcome = await within(
      new Promise<unknown>((resolve) =>
        mesh.dispatcher.dispatch({ origin: 'http://api', path: '/', method: 'GET' }, {
          onRequestStart(c: Dispatcher.DispatchController) {
            c.abort(reason);
          },
          onResponseStart: () => resolve('head'),
          onResponseError: (_c: unknown, e: Error) => resolve(e),
        } as Dispatcher.DispatchHandler),
      ),
      5000,
      'dispatch',
    );
    expect(outcome).toBe(reason);
    expect(server.requests).toBe(0);
  });
});

/**
 * A 1xx (103 Early Hints) before a final response, through fetch. fetch's handler returns `false`
 * from `onHeaders` for every 1xx; undici's parser ignores that for a 1xx, but the mesh took it for
 * a pause and paused the connection. Past a final response with a body, fetch's first read resumed
 * it; past one with no body to read (304, 204), or a body nobody read, nothing did: the exchange
 * never ended. The call stayed in flight for ever, holding its connection (the next call on it
 * hung), its concurrency and breaker slots, and `close()`.
 */
import type http from 'node:http';
import { fetch as undiciFetch } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { Opened, within } from './data-plane-support.js';

const opened = new Opened();
afterEach(() => opened.closeAll());

/** 103 Early Hints, then `status` (with `body` unless the status has none). */
function hintsThen(status: number, body = '') {
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    req.resume();
    req.on('end', () => {
      res.writeEarlyHints({ link: '</app.css>; rel=preload; as=style' });
      res.writeHead(status, { etag: '"v1"' });
      res.end(status === 304 || status === 204 ? undefined : body);
    });
  };
}

type Way = 'mesh.fetch' | 'undici.fetch over mesh.dispatcher' | 'global fetch after install()';

describe('a 1xx before a final response, through fetch', () => {
  for (const [status, body, read] of [
    [304, '', true],
    [204, '', true],
    [200, 'hello', false],
  ] as const) {
    for (const way of [
      'mesh.fetch',
      'undici.fetch over mesh.dispatcher',
      'global fetch after install()',
    ] as Way[]) {
      it(`103 then ${status}${read ? '' : ' (body not read)'} via ${way}: the exchange ends`, async () => {
        const s = await opened.server('hints', hintsThen(status, body));
        // One connection: a call left paused on it holds every later call back.
        const m = opened.meshFor([s], {}, { connectionsPerEndpoint: 1 });
        const undo = way === 'global fetch after install()' ? m.install() : undefined;
        try {
          const call = (): Promise<Response> =>
            way === 'mesh.fetch'
              ? m.fetch('http://api/x')
              : way === 'undici.fetch over mesh.dispatcher'
                ? (undiciFetch('http://api/x', { dispatcher: m.dispatcher }) as unknown as Promise<Response>)
                : fetch('http://api/x');
          for (let i = 0; i < 3; i++) {
            const res = await within(call(), 5000, `call ${i + 1} via ${way}`);
            expect(res.status).toBe(status);
            if (read) expect(await res.text()).toBe(body);
          }
          expect(s.requests).toBe(3);
          // Nothing is left in flight once the responses have come in: close() has nothing to wait for.
          await within(m.close(), 5000, 'mesh.close()');
          expect(m.stats('api')?.inFlight ?? 0).toBe(0);
        } finally {
          undo?.();
        }
      });
    }
  }
});

/**
 * `mesh.dispatcher` keeps undici's `Dispatcher` contract (probe9 defects 4, 5): the handler style
 * is decided by `onRequestStart` alone, and `close` / `destroy` take and call back as
 * `DispatcherBase` does; `closed` and `destroyed` read as undici's (`closed` only by `close()`,
 * `destroyed` also once `close()` has finished, and a `close()` after that is
 * `ClientDestroyedError`) — they read `closed` after `destroy()` and never `destroyed` after a close.
 */
import type http from 'node:http';
import { createMesh, type Mesh } from 'proxyless';
import { Agent, errors } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../../support/http-server.js';

let server: TestServer;

beforeAll(async () => {
  server = await startServer('api', (req: http.IncomingMessage, res: http.ServerResponse) => {
    req.resume();
    res.end('hello');
  });
});
afterAll(async () => {
  await server.close();
});

function mesh(): Mesh {
  return createMesh({ env: {}, passthrough: false, services: { api: { endpoints: server.address } } });
}

describe('handler style', () => {
  it('a handler with onResponseStart but no onRequestStart gets the old callbacks, as undici gives them', async () => {
    const m = mesh();
    try {
      const calls: string[] = [];
      const chunks: Buffer[] = [];
      await new Promise<void>((resolve, reject) => {
        m.dispatcher.dispatch({ origin: 'http://api', path: '/', method: 'GET' }, {
          onConnect: () => calls.push('onConnect'),
          onHeaders: (status: number) => {
            calls.push(`onHeaders ${status}`);
            return true;
          },
          onData: (chunk: Buffer) => {
            chunks.push(chunk);
            return true;
          },
          onComplete: () => {
            calls.push('onComplete');
            resolve();
          },
          onError: reject,
          onResponseStart: () => calls.push('onResponseStart'),
          onResponseEnd: () => calls.push('onResponseEnd'),
        } as never);
      });
      expect(calls).toEqual(['onConnect', 'onHeaders 200', 'onComplete']);
      expect(Buffer.concat(chunks).toString()).toBe('hello');
    } finally {
      await m.close();
    }
  });
});

describe('close and destroy', () => {
  it('a callback that is not a function is an InvalidArgumentError, thrown at once', async () => {
    const m = mesh();
    try {
      expect(() => m.dispatcher.close(5 as never)).toThrow(errors.InvalidArgumentError);
      expect(() => m.dispatcher.destroy(null, 5 as never)).toThrow(errors.InvalidArgumentError);
    } finally {
      await m.close();
    }
  });

  it('callbacks get (null, null); close after destroy is ClientDestroyedError', async () => {
    const m = mesh();
    const args = await new Promise<unknown[]>((resolve) => {
      m.dispatcher.destroy((...a: unknown[]) => resolve(a));
    });
    expect(args).toEqual([null, null]);
    await expect(m.dispatcher.close()).rejects.toBeInstanceOf(errors.ClientDestroyedError);
    const closed = await new Promise<unknown[]>((resolve) => {
      m.dispatcher.close((...a: unknown[]) => resolve(a));
    });
    expect(closed[0]).toBeInstanceOf(errors.ClientDestroyedError);
    expect(closed[1]).toBeNull();
  });

  it('close with a callback calls it with (null, null)', async () => {
    const m = mesh();
    const args = await new Promise<unknown[]>((resolve) => {
      m.dispatcher.close((...a: unknown[]) => resolve(a));
    });
    expect(args).toEqual([null, null]);
  });

  it('closed and destroyed read as on an undici Agent through close() and destroy()', async () => {
    type Flags = { closed: boolean; destroyed: boolean };
    // `Dispatcher` types neither flag; undici's Agent and the mesh's dispatcher have both.
    const flags = (d: object): Flags => {
      const { closed, destroyed } = d as Flags;
      return { closed, destroyed };
    };
    const lifecycle = async (d: Agent | Mesh['dispatcher']): Promise<unknown[]> => {
      const seen: unknown[] = [flags(d)];
      const closing = d.close();
      seen.push(flags(d));
      await closing;
      seen.push(flags(d));
      seen.push(
        await d.close().then(
          () => 'resolved',
          (e: Error) => e.constructor.name,
        ),
      );
      return seen;
    };
    const m = mesh();
    expect(await lifecycle(m.dispatcher)).toEqual(await lifecycle(new Agent()));

    const destroyed = async (d: Agent | Mesh['dispatcher']): Promise<unknown[]> => {
      await d.destroy();
      return [flags(d), await d.destroy().then(() => 'resolved')];
    };
    const m2 = mesh();
    expect(await destroyed(m2.dispatcher)).toEqual(await destroyed(new Agent()));
  });
});

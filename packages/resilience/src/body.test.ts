import { createRequire } from 'node:module';
import { PassThrough, Readable } from 'node:stream';
import { isRequestBodyError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { isReusableBody, REPLAY_BUFFER_BYTES, recordBody } from './body.js';

/** undici's own `util.bodyLength`: the length it sends as `content-length`, or null (chunked). */
const { bodyLength } = createRequire(import.meta.url)('undici/lib/core/util.js') as {
  bodyLength(body: unknown): number | null;
};

/** The length undici gives a body when it writes the request: it first calls `read(0)`. */
function lengthAsUndici(body: unknown): number | null {
  const b = body as { read?: (n: number) => unknown };
  if (typeof b.read === 'function') b.read(0);
  return bodyLength(body);
}

function endedStream(text: string | Buffer): Readable {
  const r = new Readable({ read() {} });
  r.push(text);
  r.push(null);
  return r;
}

async function read(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c);
  return Buffer.concat(chunks);
}

describe('request bodies: every ArrayBufferView is bytes', () => {
  it('takes typed arrays of any element type and DataView as reusable bytes, as undici sends them', () => {
    const views = [
      new Uint16Array([0x0102, 0x0304]),
      new Int8Array([1, -1]),
      new Float32Array([1.5]),
      new Uint8ClampedArray([1, 2]),
      new BigUint64Array([1n]),
      new DataView(new ArrayBuffer(2)),
    ];
    for (const v of views) {
      expect([v.constructor.name, isReusableBody(v as never)]).toEqual([v.constructor.name, true]);
      expect(recordBody(v as never)).toBeUndefined();
    }
  });

  it('records the bytes a streamed chunk views, whatever its element type and offset', async () => {
    const backing = new Uint16Array([0xaaaa, 0x0102, 0x0304]);
    const chunks = [
      new Uint16Array(backing.buffer, 2, 2),
      new DataView(new Uint8Array([9, 5, 6]).buffer, 1),
      'é',
      Buffer.from('!'),
    ];
    const recorder = recordBody(Readable.from(chunks) as never)!;
    const sent = await read(recorder.attempt());
    expect(sent.toString('hex')).toBe(`02010403` + `0506` + `c3a9` + `21`);
    expect(recorder.replayable).toBe(true);
    expect((await read(recorder.attempt())).equals(sent)).toBe(true);
  });

  it('never turns a chunk that is not a string or bytes into text: the TypeError undici gets', async () => {
    // URLSearchParams iterates [name, value] arrays; undici's writer fails on the first one.
    for (const body of [
      new URLSearchParams({ a: '1' }),
      [5],
      [{}],
      [new ArrayBuffer(2)],
      (async function* () {
        yield 5;
      })(),
    ]) {
      const recorder = recordBody(body as never)!;
      const error = await read(recorder.attempt()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TypeError);
      expect(error).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
      // The caller's own body failed: never charged to an endpoint, never retried.
      expect(isRequestBodyError(error)).toBe(true);
    }
  });
});

describe('request bodies: an attempt of a stream is framed as undici frames the stream', () => {
  it('an ended byte stream: each attempt has the length undici gives the stream (content-length)', async () => {
    expect(lengthAsUndici(endedStream('hello'))).toBe(5);
    const recorder = recordBody(endedStream('hello') as never)!;
    const first = recorder.attempt();
    expect(lengthAsUndici(first)).toBe(5);
    expect((await read(first)).toString()).toBe('hello');
    expect(recorder.replayable).toBe(true);
    // The replay of the kept body too.
    const again = recorder.attempt();
    expect(lengthAsUndici(again)).toBe(5);
    expect((await read(again)).toString()).toBe('hello');
  });

  it('a stream whose end is ready when read (a read(0) reaches it) is seen ended, as by undici', async () => {
    const lazy = () =>
      new Readable({
        read() {
          this.push('abc');
          this.push(null);
        },
      });
    expect(lengthAsUndici(lazy())).toBe(3);
    const attempt = recordBody(lazy() as never)!.attempt();
    expect(lengthAsUndici(attempt)).toBe(3);
    expect((await read(attempt)).toString()).toBe('abc');
  });

  it('an empty ended stream has length 0, as undici gives it', async () => {
    const empty = () => {
      const r = new Readable({ read() {} });
      r.push(null);
      return r;
    };
    expect(lengthAsUndici(empty())).toBe(0);
    const attempt = recordBody(empty() as never)!.attempt();
    expect(lengthAsUndici(attempt)).toBe(0);
    expect((await read(attempt)).length).toBe(0);
  });

  it('a stream still open, an object-mode stream, an async iterable: no length (chunked), as undici', async () => {
    const open = new PassThrough();
    const openAttempt = recordBody(open as never)!.attempt();
    expect(lengthAsUndici(openAttempt)).toBeNull();
    open.end('late');
    expect((await read(openAttempt)).toString()).toBe('late');

    expect(lengthAsUndici(Readable.from(['a', 'b']))).toBeNull();
    const objectAttempt = recordBody(Readable.from(['a', 'b']) as never)!.attempt();
    expect(lengthAsUndici(objectAttempt)).toBeNull();
    expect((await read(objectAttempt)).toString()).toBe('ab');

    const iterable = recordBody(
      (async function* () {
        yield 'x';
      })() as never,
    )!.attempt();
    expect(iterable).not.toBeInstanceOf(Readable);
    expect(bodyLength(iterable)).toBeNull();
  });

  it('an ended stream past the replay buffer is sent whole with its length, and not kept', async () => {
    const big = Buffer.alloc(REPLAY_BUFFER_BYTES + 1, 97);
    const recorder = recordBody(endedStream(big) as never)!;
    const attempt = recorder.attempt();
    expect(lengthAsUndici(attempt)).toBe(big.length);
    expect((await read(attempt)).equals(big)).toBe(true);
    expect(recorder.replayable).toBe(false);
  });

  it("an error of the source stream reaches the attempt marked as the caller's own", async () => {
    const source = new Readable({ read() {} });
    source.push('abc');
    const attempt = recordBody(source as never)!.attempt();
    expect(lengthAsUndici(attempt)).toBeNull();
    const boom = new Error('boom');
    setTimeout(() => source.destroy(boom), 5);
    await expect(read(attempt)).rejects.toBe(boom);
    expect(isRequestBodyError(boom)).toBe(true);
  });
});

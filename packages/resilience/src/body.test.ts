import { Readable } from 'node:stream';
import { isRequestBodyError } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { isReusableBody, recordBody } from './body.js';

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

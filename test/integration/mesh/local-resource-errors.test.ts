/**
 * A connect that fails because this process has no file descriptor left (EMFILE; ENFILE, ENOBUFS
 * and ENOMEM alike) is not the endpoint's failure. It was charged as one: the endpoint went to
 * TRANSIENT_FAILURE, the retry took the next endpoint out the same way, and every later call failed
 * with MESH_NO_HEALTHY_ENDPOINTS ("every connect failed") — the cause hidden — until a reconnect
 * attempt succeeded after the descriptors were back. Now the caller gets the error undici raised
 * (code EMFILE), the endpoints stay in, and the first call after the descriptors are back succeeds.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runFixture } from '../../support/run-fixture.js';

describe('this process out of file descriptors', () => {
  it('is not charged to the endpoints: the caller sees EMFILE, and the service is fine after', async () => {
    const script = fileURLToPath(new URL('./fixtures/fd-exhaustion.ts', import.meta.url));
    const { code, out, err } = await runFixture(script, [], { maxOpenFiles: 256 });
    expect({ code, err: err.slice(0, 2000) }).toEqual({ code: 0, err: '' });
    const r = JSON.parse(out) as {
      warm: string[];
      exhausted: string[];
      statesExhausted: string[];
      after: string[];
      states: string[];
    };
    expect(r.warm).toEqual(['200', '200']);
    expect(r.exhausted).toEqual(Array(3).fill('EMFILE (not a MeshError)'));
    expect(r.statesExhausted).not.toContain('TRANSIENT_FAILURE');
    expect(r.after).toEqual(['200', '200']);
    expect(r.states).not.toContain('TRANSIENT_FAILURE');
  });
});

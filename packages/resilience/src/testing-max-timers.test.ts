import { describe, expect, it } from 'vitest';
import { runPolicy, VirtualClock } from './testing.js';

describe('runPolicy maxTimers', () => {
  it('says the timer budget ran out, naming maxTimers and its value, not that the call hangs', async () => {
    const clock = new VirtualClock();
    const err = await runPolicy(
      { retry: { maxRetries: 5, backoff: { base: '10ms' } } },
      ['503', '503', '503', '503', 200],
      { maxTimers: 2, clock },
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'MESH_INTERNAL', details: { maxTimers: 2 } });
    expect((err as Error).message).toMatch(/timer budget ran out \(maxTimers: 2\)/);
    expect((err as Error).message).not.toMatch(/hang/);
    // The call was aborted before reporting: nothing of it is left on the clock.
    expect(clock.pendingTimers).toBe(0);
  });

  it('still reports a hang as a hang', async () => {
    await expect(runPolicy({}, ['hang'], { maxTimers: 2 })).rejects.toThrow(/did not settle \(a hang/);
  });

  it('is enough when the call needs no more timers than that', async () => {
    const rec = await runPolicy(
      { retry: { maxRetries: 5, backoff: { base: '10ms' } } },
      ['503', '503', '503', '503', 200],
      { maxTimers: 4 },
    );
    expect(rec.status).toBe(200);
  });
});

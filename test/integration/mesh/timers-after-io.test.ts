/**
 * The mesh's timers (timeouts, per-try timeouts, hedges, health-check and DNS timeouts, backoffs)
 * that fire late run their callbacks after the I/O the event loop already has, as undici runs its
 * connect timeout. Node runs every due timer before it reads any socket: after the loop was blocked, a
 * response that arrived in time would otherwise be failed by its own timeout (see
 * test/integration/resilience/event-loop-stall.test.ts for the calls).
 *
 * Each case blocks this thread with data already written to a real socket on 127.0.0.1 and a timer
 * of the mesh's clock due, then watches which runs first.
 */
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { systemClock } from '@proxyless/core';
import { afterEach, describe, expect, it } from 'vitest';
import { runFixture } from '../../support/run-fixture.js';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

/** A connected pair of TCP sockets on 127.0.0.1. */
async function socketPair(): Promise<{ client: net.Socket; server: net.Socket }> {
  const listener = net.createServer();
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => listener.once('connection', r));
  const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', () => r()));
  const server = await accepted;
  closers.push(() => {
    client.destroy();
    server.destroy();
    listener.close();
  });
  return { client, server };
}

/** Block the thread until `ms` have passed (the event loop runs no phase meanwhile). */
function block(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // Blocked, as under a long synchronous task.
  }
}

describe("the mesh clock's timers after a blocked event loop", () => {
  it('read the data that arrived in time before they run', async () => {
    const { client, server } = await socketPair();
    const order: string[] = [];
    const both = new Promise<void>((resolve) => {
      client.once('data', () => {
        order.push('data');
        if (order.length === 2) resolve();
      });
      systemClock.setTimer(5, () => {
        order.push('timer');
        if (order.length === 2) resolve();
      });
    });
    server.write('answer');
    block(50);
    await both;
    expect(order).toEqual(['data', 'timer']);
  });

  it('a timer cancelled by what that data brings never runs', async () => {
    const { client, server } = await socketPair();
    let fired = false;
    const timer = systemClock.setTimer(5, () => {
      fired = true;
    });
    const data = new Promise<void>((resolve) =>
      client.once('data', () => {
        timer.cancel();
        // Resolved after this turn's check phase, where the timer's callback would have run.
        setImmediate(resolve);
      }),
    );
    server.write('answer');
    block(50);
    await data;
    expect(fired).toBe(false);
  });

  it("runs a late background (unref'd) timer's callback in that turn, with nothing else to wake the loop", async () => {
    const script = fileURLToPath(new URL('./fixtures/background-timer.ts', import.meta.url));
    const { code, out, err } = await runFixture(script);
    expect({ code, err: err.slice(0, 2000) }).toEqual({ code: 0, err: '' });
    expect(out).toMatch(/^ran after \d+ ms\n$/);
    expect(Number(/\d+/.exec(out)?.[0])).toBeLessThan(5_000);
  });
});

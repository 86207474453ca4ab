import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { DirectBody } from './direct.js';

function fakeController() {
  const calls: string[] = [];
  const c = {
    paused: false,
    aborted: false,
    reason: null,
    pause: () => {
      calls.push('pause');
      c.paused = true;
    },
    resume: () => {
      calls.push('resume');
      c.paused = false;
    },
    abort: (reason?: Error) => {
      calls.push(`abort:${reason?.message ?? ''}`);
      c.aborted = true;
    },
  };
  return { controller: c as unknown as Dispatcher.DispatchController, calls };
}

describe('DirectBody', () => {
  it('delivers what arrived before attach first, then streams straight to the sink', () => {
    const { controller } = fakeController();
    const body = new DirectBody(controller);
    body.feed(Buffer.from('a'));
    body.feed(Buffer.from('b'));
    const got: string[] = [];
    let ended = false;
    body.attach({ data: (c) => got.push(c.toString()), end: () => (ended = true), error: () => undefined });
    body.feed(Buffer.from('c'));
    body.finish({});
    expect(got.join('')).toBe('abc');
    expect(ended).toBe(true);
  });

  it('ends the sink at attach when the response already finished', () => {
    const { controller } = fakeController();
    const body = new DirectBody(controller);
    body.feed(Buffer.from('all'));
    body.finish({ 'x-trailer': '1' });
    let trailers: unknown;
    const got: string[] = [];
    body.attach({ data: (c) => got.push(c.toString()), end: (t) => (trailers = t), error: () => undefined });
    expect(got.join('')).toBe('all');
    expect(trailers).toEqual({ 'x-trailer': '1' });
  });

  it('maps pause/resume/destroy to the connection once attached, without stream errors', () => {
    const { controller, calls } = fakeController();
    const body = new DirectBody(controller);
    const errors: Error[] = [];
    body.on('error', (e) => errors.push(e));
    body.attach({ data: () => undefined, end: () => undefined, error: () => undefined });
    calls.length = 0;
    body.pause();
    body.resume();
    body.destroy(new Error('caller went away'));
    expect(calls).toEqual(['pause', 'resume', 'abort:caller went away']);
    expect(errors).toEqual([]);
  });

  it('is an ordinary readable until attached (a discarded retry reads it to the end)', async () => {
    const { controller } = fakeController();
    const body = new DirectBody(controller);
    body.feed(Buffer.from('503 body'));
    body.finish({});
    let text = '';
    for await (const chunk of body) text += (chunk as Buffer).toString();
    expect(text).toBe('503 body');
  });
});

import { describe, expect, expectTypeOf, it } from 'vitest';
import { type ScriptStep, scriptedUpstream, testContext, testEndpoints } from './testing.js';
import { VirtualClock } from './virtual-clock.js';

async function text(body: AsyncIterable<Uint8Array | string>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks).toString('utf8');
}

describe('scriptedUpstream bodies', () => {
  it('answers a Uint8Array or Buffer body as bytes (the type said string only)', async () => {
    // Compiles only with `body: string | Uint8Array` (pnpm typecheck covers test files).
    const bytes: ScriptStep = { status: 200, body: new Uint8Array([0x6f, 0x6b]) };
    const buffer: ScriptStep = { status: 200, body: Buffer.from('héllo') };
    expectTypeOf<Extract<ScriptStep, object>['body']>().toEqualTypeOf<string | Uint8Array | undefined>();
    const up = scriptedUpstream([bytes, buffer, { status: 204, body: new Uint8Array(0) }]);
    expect(await text((await up(testContext())).body)).toBe('ok');
    expect(await text((await up(testContext())).body)).toBe('héllo');
    expect(await text((await up(testContext())).body)).toBe('');
  });
});

describe('testEndpoints', () => {
  it('returns 10.0.0.1:8080, 10.0.0.2:8080, … as its doc comment says', () => {
    expect(testEndpoints(3).map((e) => e.id)).toEqual(['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080']);
    expect(testEndpoints(251)[250]?.id).toBe('10.0.1.1:8080');
  });
});

describe('VirtualClock refuses a time that is not a finite number', () => {
  it.each([['5'], [Number.NaN], [Number.POSITIVE_INFINITY]])('start %s', (start) => {
    expect(() => new VirtualClock(start as number)).toThrow(RangeError);
  });
  it('options.wall and setWallTime', () => {
    expect(() => new VirtualClock(0, { wall: Number.NaN })).toThrow(RangeError);
    expect(() => new VirtualClock(0).setWallTime('1' as unknown as number)).toThrow(RangeError);
    const clock = new VirtualClock(5, { wall: 1000 });
    expect([clock.now(), clock.wallNow()]).toEqual([5, 1000]);
  });
});

import { describe, expect, expectTypeOf, it } from 'vitest';
import { type ScriptStep, scriptedUpstream, testContext, testEndpoints } from './testing.js';

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

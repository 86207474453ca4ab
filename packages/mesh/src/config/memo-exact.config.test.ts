import { Issues, SectionMemo } from '@proxyless/core';
import { describe, expect, it } from 'vitest';
import { createMesh, type MeshEvent } from '../mesh.js';
import { PolicyMemo, parseDocumentLayers } from './layers.js';
import { createConfigSource } from './source.js';

// A memo hit must never skip a check the uncached parse makes (probe7 config defect 2): a value
// built in code is keyed only when its JSON text names it exactly.
const parse = (memo: PolicyMemo, doc: unknown, version = 1) => {
  const issues = new Issues();
  parseDocumentLayers(doc, version, issues, memo);
  return issues.list.map((i) => i.field);
};

describe('the config memos key only values that are JSON data exactly (probe7 config defect 2)', () => {
  it('an undefined-valued unknown key after the same policy is still refused (policy memo)', () => {
    const memo = new PolicyMemo();
    expect(parse(memo, { services: { a: { retry: { maxRetries: 2 } } } })).toEqual([]);
    expect(parse(memo, { services: { a: { retry: { maxRetries: 2 }, retyr: undefined } } }, 2)).toEqual([
      'services.a.retyr',
    ]);
    // Within one document too.
    expect(
      parse(new PolicyMemo(), {
        services: { a: { retry: { maxRetries: 2 } }, b: { retry: { maxRetries: 2 }, retyr: undefined } },
      }),
    ).toEqual(['services.b.retyr']);
  });

  it('an undefined- or function-valued unknown field of a repeated section is still refused (section memo)', () => {
    const doc = {
      services: {
        a: { timeout: '1s', retry: { maxRetries: 2 } },
        b: { timeout: '2s', retry: { maxRetries: 2, maxRetrys: undefined } },
        c: { timeout: '3s', retry: { maxRetries: 2, backof: () => 1 } },
      },
    };
    expect(parse(new PolicyMemo(), doc)).toEqual(['services.b.retry.maxRetrys', 'services.c.retry.backof']);
  });

  it('a value JSON cannot write is refused by path, not thrown as a TypeError', () => {
    const doc = { services: { a: { timeout: '1s', retry: { maxRetries: 2n } } } };
    expect(parse(new PolicyMemo(), doc)).toEqual(['services.a.retry.maxRetries']);
  });

  it('a running mesh refuses the version createMesh would refuse', async () => {
    const src = createConfigSource('kv', { services: { a: { retry: { maxRetries: 2 } } } });
    const mesh = createMesh({ passthrough: false, env: {}, configSource: src });
    const events: string[] = [];
    mesh.onEvent((e: MeshEvent) => {
      if (e.type === 'config_rejected') events.push(`rejected ${e.error.message}`);
      if (e.type === 'config_applied') events.push('applied');
    });
    src.update({ services: { a: { retry: { maxRetries: 2 }, retyr: undefined } } } as never);
    await mesh.close();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatch(/^rejected .*services\.a\.retyr: expected no such field/);
  });

  it('SectionMemo.keyOf names JSON data, and nothing else', () => {
    expect(SectionMemo.keyOf({ a: [1, 'x', null, true, { b: 2 }] })).toBe('{"a":[1,"x",null,true,{"b":2}]}');
    for (const v of [
      { a: undefined },
      { a: () => 1 },
      { a: Number.NaN },
      { a: Number.POSITIVE_INFINITY },
      { a: 1n },
      { a: Symbol('s') },
      { a: new Date(0) },
      { a: new Map() },
      new Array(2),
      [undefined],
    ])
      expect(SectionMemo.keyOf(v)).toBeUndefined();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(SectionMemo.keyOf(cyclic)).toBeUndefined();
  });
});

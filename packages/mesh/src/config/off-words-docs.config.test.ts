/**
 * Every word a timeout takes for "none" is documented where the docs say what it takes (probe30
 * docs defect 6: the schema and the validator take `"none"`, the docs named `"off"` at most).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkConfigDocument } from './check.js';
import { policySchema } from './schema.js';

const docs = (file: string): string =>
  readFileSync(new URL(`../../../../docs/${file}`, import.meta.url), 'utf8').replace(/\s+/g, ' ');

/** The literals (`false`, `"off"`, …) a section's schema takes besides its value. */
function literals(key: 'timeout' | 'perTryTimeout'): unknown[] {
  const s = policySchema.properties[key] as unknown as { anyOf: Array<{ const?: unknown }> };
  return s.anyOf.filter((v) => 'const' in v).map((v) => v.const);
}

describe('the words a timeout takes for none', () => {
  it.each(['timeout', 'perTryTimeout'] as const)('%s: every one is accepted', (key) => {
    expect(literals(key)).toEqual(expect.arrayContaining([false, 'off', 'none']));
    for (const off of literals(key))
      expect(() => checkConfigDocument({ services: { api: { [key]: off } } })).not.toThrow();
  });

  it.each([
    ['policies.md', /`timeout` and `perTryTimeout` take a duration, ([^)]*) for none/],
    ['configuration.md', /`timeout` and `perTryTimeout` take a duration, ([^)]*) for none/],
  ])('%s lists every one', (file, sentence) => {
    const listed = sentence.exec(docs(file))?.[1];
    expect(listed, `the sentence in ${file}`).toBeDefined();
    for (const off of [...literals('timeout'), 0]) expect(listed).toContain(`\`${JSON.stringify(off)}\``);
  });
});

import { readFileSync } from 'node:fs';
import { balancerProperties } from '@proxyless/balancer';
import { envFields, Fields, type TSchema } from '@proxyless/core';
import { resilienceProperties } from '@proxyless/resilience';
import { allEnvVars, createMesh } from 'proxyless';
import { describe, expect, it } from 'vitest';
import { BLOCKS, blockOf, renderJsonSchema, SCHEMA_FILE } from '../../../scripts/gen-config-docs.js';
import { END, renderEnvTable, START } from '../../../scripts/gen-env-table.js';

describe('docs/configuration.md', () => {
  it('lists exactly the variables the code reads, with the same defaults (#3)', () => {
    const text = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');
    const table = text.slice(text.indexOf(START) + START.length, text.indexOf(END));
    const documented = new Map<string, string>();
    for (const line of table.split('\n')) {
      const m = /^\| `([A-Z0-9_<>]+)` \| (.*?) \| (.*?) \| /.exec(line);
      if (m) documented.set(m[1]!.replace('<SERVICE>', ''), m[3]!.replace(/\\\|/g, '|'));
    }
    const code = new Map(allEnvVars.map((v) => [v.name, v.defaultValue]));
    expect([...documented.keys()].sort()).toEqual([...code.keys()].sort());
    for (const [name, def] of code) expect({ name, def: documented.get(name) }).toEqual({ name, def });
  });

  it('its variable table is the one the code generates: types and ranges too', () => {
    const text = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');
    const table = text.slice(text.indexOf(START) + START.length, text.indexOf(END));
    expect(table.trim(), 'run pnpm docs:env').toBe(renderEnvTable());
  });
});

/** The range a numeric field's schema enforces, as the env table must state it (`0..100`, `≥ 1ms`). */
function rangeOf(schema: TSchema): string | undefined {
  const s = schema as unknown as Record<string | symbol, unknown>;
  const kind = s[Symbol.for('TypeBox.Kind')];
  if (kind === 'Duration') {
    const min = s['x-min-ms'] as number | undefined;
    const max = s['x-max-ms'] as number | undefined;
    if (min !== undefined && max !== undefined) return `${min}ms..${max}ms`;
    if (min !== undefined) return `≥ ${min}ms`;
    return max !== undefined ? `≤ ${max}ms` : undefined;
  }
  if (kind === 'Integer' || kind === 'Number') {
    // The ±MAX_SAFE_INTEGER bounds every integer field has are not part of the range a docs row says.
    const safe = (n: unknown): number | undefined =>
      n === Number.MAX_SAFE_INTEGER || n === -Number.MAX_SAFE_INTEGER ? undefined : (n as number | undefined);
    const min = safe(s.minimum);
    const max = safe(s.maximum);
    if (s.exclusiveMinimum !== undefined) return `> ${s.exclusiveMinimum as number}`;
    if (min !== undefined && max !== undefined) return `${min}..${max}`;
    if (min !== undefined) return `≥ ${min}`;
    return max !== undefined ? `≤ ${max}` : undefined;
  }
  if (kind === 'Union') {
    for (const v of s.anyOf as TSchema[]) {
      const r = rangeOf(v);
      if (r !== undefined) return r;
    }
  }
  return undefined;
}

describe('the env table states the ranges the validator enforces', () => {
  it('every variable of a numeric field names its range as the schema has it', () => {
    const wrong: Array<{ name: string; type: string; range: string }> = [];
    for (const f of envFields(Fields({ ...balancerProperties, ...resilienceProperties }))) {
      const range = rangeOf(f.schema);
      const type = allEnvVars.find((v) => v.name === f.binding.name)?.type ?? '';
      if (range !== undefined && !type.includes(range)) wrong.push({ name: f.binding.name, type, range });
    }
    expect(wrong).toEqual([]);
  });
});

describe('generated configuration docs (#10)', () => {
  it.each(BLOCKS.map((b) => [b.file, b.name, b.render] as const))(
    '%s: the %s table is current',
    (file, name, render) => {
      const text = readFileSync(new URL(`../../../${file}`, import.meta.url), 'utf8');
      expect(blockOf(text, name), `run pnpm docs:config`).toBe(render());
    },
  );

  it('docs/config-file.schema.json is current', () => {
    const text = readFileSync(new URL(`../../../${SCHEMA_FILE}`, import.meta.url), 'utf8');
    expect(text, 'run pnpm docs:config').toBe(renderJsonSchema());
  });

  it('the JSON Schema and the validator agree on what `true` means per section', () => {
    const schema = JSON.parse(renderJsonSchema()) as {
      properties: {
        defaults: { properties: Record<string, { anyOf?: Array<{ type?: string; const?: unknown }> }> };
      };
    };
    const allowsTrue = (key: string): boolean =>
      (schema.properties.defaults.properties[key]?.anyOf ?? []).some(
        (v) => (v.type === 'boolean' && v.const === undefined) || v.const === true,
      );
    for (const key of Object.keys(schema.properties.defaults.properties)) {
      let accepted = true;
      try {
        createMesh({ env: {}, defaults: { [key]: true } as never });
      } catch {
        accepted = false;
      }
      expect({ key, accepted }).toEqual({ key, accepted: allowsTrue(key) });
    }
  });
});

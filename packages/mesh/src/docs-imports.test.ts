/**
 * The examples of the README and the guides import only what an application that installs
 * `proxyless` has: with pnpm (no hoisting) the mesh's own dependencies (`@proxyless/telemetry`,
 * `@proxyless/resilience`, …) are not importable by it. Each name imported from `proxyless`,
 * `proxyless/testing` or `proxyless/otel` is exported there.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as proxyless from './index.js';
import * as otel from './otel.js';
import * as testing from './testing.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const DOCS = [
  'README.md',
  'packages/mesh/README.md',
  'docs/observability.md',
  'docs/policies.md',
  'docs/testing-policies.md',
  'docs/registries-consul.md',
  'docs/registries-dns.md',
  'docs/registries-etcd.md',
];
const MODULES: Record<string, Record<string, unknown>> = {
  proxyless,
  'proxyless/testing': testing,
  'proxyless/otel': otel,
};
/** Imports from elsewhere that a doc makes on purpose, saying which package to install. */
const ELSEWHERE: Record<string, Record<string, readonly string[]>> = {
  // The admin server on its own, without the mesh ("install that package for it").
  'docs/observability.md': { '@proxyless/telemetry': ['allResolved', 'createAdminServer', 'serviceView'] },
};

interface Import {
  doc: string;
  from: string;
  names: string[];
}

function importsOf(doc: string): Import[] {
  const text = readFileSync(path.join(ROOT, doc), 'utf8');
  const blocks = [...text.matchAll(/^```(?:ts|js|mjs|cjs|typescript|javascript)\n([\s\S]*?)^```/gm)];
  const out: Import[] = [];
  for (const [, code] of blocks)
    for (const m of code!.matchAll(/^import\s+(type\s+)?([\s\S]*?)\s+from\s+'([^']+)'/gm)) {
      const braces = /\{([\s\S]*)\}/.exec(m[2]!);
      const names = m[1]
        ? []
        : (braces?.[1] ?? '')
            .split(',')
            .map((n) => n.trim())
            .filter((n) => n !== '' && !n.startsWith('type '))
            .map((n) => n.split(/\s+as\s+/)[0]!);
      out.push({ doc, from: m[3]!, names });
    }
  return out;
}

describe('imports of the doc examples', () => {
  const imports = DOCS.flatMap(importsOf);

  it('finds the examples', () => {
    expect(imports.filter((i) => i.from === 'proxyless').length).toBeGreaterThan(3);
  });

  it('import from proxyless, proxyless/testing, proxyless/otel, undici or node: only', () => {
    const outside = imports
      .filter((i) => !(i.from in MODULES) && i.from !== 'undici' && !i.from.startsWith('node:'))
      .filter((i) => !i.names.every((n) => ELSEWHERE[i.doc]?.[i.from]?.includes(n)))
      .map((i) => `${i.doc}: ${i.names.join(', ')} from '${i.from}'`);
    expect(outside).toEqual([]);
  });

  it('import names each module exports', () => {
    const missing = imports
      .filter((i) => i.from in MODULES)
      .flatMap((i) =>
        i.names.filter((n) => !(n in MODULES[i.from]!)).map((n) => `${i.doc}: ${n} from '${i.from}'`),
      );
    expect(missing).toEqual([]);
  });
});

describe('what the examples and guides call (probe26 docs defects 1 and 3)', () => {
  const blocks = DOCS.flatMap((doc) => {
    const text = readFileSync(path.join(ROOT, doc), 'utf8');
    return [...text.matchAll(/^```(?:ts|js|mjs|cjs|typescript|javascript)\n([\s\S]*?)^```/gm)].map(
      ([, code]) => ({ doc, code: code! }),
    );
  });

  it('an example that imports from proxyless imports every proxyless function it calls', () => {
    const missing = blocks
      .filter((b) => /from 'proxyless'/.test(b.code))
      .flatMap((b) => {
        const imported = new Set<string>();
        for (const m of b.code.matchAll(/^import\s+\{([\s\S]*?)\}\s+from\s+'proxyless[^']*'/gm))
          for (const n of m[1]!.split(','))
            imported.add(
              n
                .trim()
                .replace(/^type\s+/, '')
                .split(/\s+as\s+/)[0]!,
            );
        const called = [...b.code.matchAll(/(?<![.\w])([a-zA-Z_]\w*)\(/g)].map((m) => m[1]!);
        return [...new Set(called)]
          .filter((n) => typeof (proxyless as Record<string, unknown>)[n] === 'function' && !imported.has(n))
          .map((n) => `${b.doc}: ${n}`);
      });
    expect(missing).toEqual([]);
  });

  it('the *OptionsFromEnv helpers the registry guides name are exported by proxyless', () => {
    const named = DOCS.flatMap((doc) => [
      ...readFileSync(path.join(ROOT, doc), 'utf8').matchAll(/`(\w+OptionsFromEnv)\(/g),
    ]).map((m) => m[1]!);
    expect(named).toEqual(expect.arrayContaining(['dnsOptionsFromEnv', 'etcdOptionsFromEnv']));
    for (const n of named) expect(typeof (proxyless as Record<string, unknown>)[n], n).toBe('function');
  });
});

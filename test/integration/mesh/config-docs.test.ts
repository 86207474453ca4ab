import { readFileSync } from 'node:fs';
import { allEnvVars } from 'proxyless';
import { describe, expect, it } from 'vitest';
import { END, START } from '../../../scripts/gen-env-table.js';

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
});

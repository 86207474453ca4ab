import { describe, expect, it } from 'vitest';
import { createMesh, type MeshEvent } from '../mesh.js';
import type { ConfigDocument } from './schema.js';
import { createConfigSource } from './source.js';

// Type-level checks (probe7 config defect 4): the document given to createConfigSource and to its
// update() is typed as the config document is written, so `pnpm typecheck` fails on a misspelt key
// or a wrong type, as createMesh's options do.

// @ts-expect-error a misspelt top-level key does not compile
const typoTop = createConfigSource('kv', { servics: {} });
const src = createConfigSource('kv', { services: { a: { timeout: '1s', retry: { maxRetries: 2 } } } });
// @ts-expect-error a wrong type in update() does not compile
const badUpdate = () => src.update({ services: { a: { timeout: true } } });
// @ts-expect-error a misspelt section in a service entry does not compile
const typoSection = () => src.update({ services: { a: { retyr: { maxRetries: 2 } } } });
// @ts-expect-error a misspelt field of defaults does not compile
const typoDefaults = () => src.update({ defaults: { retry: { maxRetires: 2 } } });
// JSON from a control plane is `unknown` to the compiler: it is passed as a ConfigDocument.
const fromJson: unknown = JSON.parse('{"services":{"a":{"timeout":"2s"}}}');
const jsonUpdate = () => src.update(fromJson as ConfigDocument);
// Readonly arrays compile, as in ServiceOptions.
const readonlyDoc = () =>
  src.update({
    services: { a: { endpoints: '127.0.0.1:1', retry: { retryOn: ['5xx', 'reset'] as const } } },
  });

describe('createConfigSource documents are typed (probe7 config defect 4)', () => {
  it('what compiles is what the mesh applies; what does not, it rejects', async () => {
    const mesh = createMesh({ passthrough: false, env: {}, configSource: src });
    const events: string[] = [];
    mesh.onEvent((e: MeshEvent) => {
      if (e.type === 'config_applied') events.push(`applied v${e.version}`);
      if (e.type === 'config_rejected') events.push(`rejected v${e.version}`);
    });
    badUpdate();
    typoSection();
    typoDefaults();
    jsonUpdate();
    readonlyDoc();
    expect(mesh.config('a').resilience.retry?.retryOn).toEqual(['5xx', 'reset']);
    await mesh.close();
    expect(events).toEqual(['rejected v2', 'rejected v3', 'rejected v4', 'applied v5', 'applied v6']);
    expect(typoTop.current().document).toEqual({ servics: {} });
  });
});

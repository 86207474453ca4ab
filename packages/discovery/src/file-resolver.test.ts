import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MeshError, ResolverUpdate } from '@proxyless/core';
import { flushPromises, VirtualClock } from '@proxyless/core/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDocumentEndpointsResolver, createFileResolver } from './file-resolver.js';
import { type JsonFile, type JsonFileVersion, watchJsonFile } from './json-file.js';

const DOC = JSON.stringify({ services: { payments: { endpoints: '127.0.0.1:9' } } });

let dir: string;
let path: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'proxyless-file-resolver-'));
  path = join(dir, 'mesh.json');
  writeFileSync(path, DOC);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function watchFile(): { file: JsonFile; versions: JsonFileVersion[]; errors: MeshError[] } {
  const file = watchJsonFile({ path, clock: new VirtualClock() });
  const versions: JsonFileVersion[] = [];
  const errors: MeshError[] = [];
  file.onVersion((v) => versions.push(v));
  file.onError((e) => errors.push(e));
  return { file, versions, errors };
}

describe('watchJsonFile', () => {
  it('delivers the same content again when a deleted file is restored unchanged', async () => {
    const { file, versions, errors } = watchFile();
    unlinkSync(path);
    await file.reload();
    expect(errors).toHaveLength(1);
    writeFileSync(path, DOC);
    await file.reload();
    expect(versions.map((v) => v.version)).toEqual([2]);
    expect(versions[0]!.value).toEqual(JSON.parse(DOC));
    // Recovered: an unchanged file is not delivered again.
    await file.reload();
    expect(versions).toHaveLength(1);
    await file.close();
  });

  it('reports a half-written text once, however often it is re-read', async () => {
    const { file, versions, errors } = watchFile();
    writeFileSync(path, '{"services": {');
    await file.reload();
    await file.reload();
    expect(errors).toHaveLength(1);
    expect(versions).toHaveLength(0);
    await file.close();
  });
});

describe('createDocumentEndpointsResolver', () => {
  it('gives a service first watched after the source failed its last good set, marked stale', async () => {
    const r = createDocumentEndpointsResolver({ clock: new VirtualClock() });
    r.apply(new Map([['late', [{ address: '127.0.0.1', port: 9 }]]]));
    const failure = new Error('config file rejected') as MeshError;
    r.fail(failure);
    const updates: ResolverUpdate[] = [];
    r.watch('late', (u) => updates.push(u));
    await flushPromises();
    expect(updates.at(-1)).toMatchObject({ kind: 'error', lastGood: { stale: true } });
    // A version applied since: fresh, for a service watched after it too.
    r.apply(new Map([['late', [{ address: '127.0.0.1', port: 9 }]]]));
    const later: ResolverUpdate[] = [];
    r.watch('late', (u) => later.push(u));
    await flushPromises();
    expect(updates.at(-1)).toMatchObject({ kind: 'endpoints', set: { stale: false } });
    expect(later.at(-1)).toMatchObject({ kind: 'endpoints', set: { stale: false } });
    await r.close();
  });
});

describe('createFileResolver', () => {
  it('clears stale once a deleted file is restored with identical content', async () => {
    const r = createFileResolver({ path, clock: new VirtualClock() });
    const updates: ResolverUpdate[] = [];
    r.watch('payments', (u) => updates.push(u));
    await flushPromises();
    expect(updates.at(-1)).toMatchObject({ kind: 'endpoints', set: { stale: false } });
    unlinkSync(path);
    await r.reload();
    await flushPromises();
    expect(updates.at(-1)).toMatchObject({ kind: 'error', lastGood: { stale: true } });
    writeFileSync(path, DOC);
    await r.reload();
    await flushPromises();
    const last = updates.at(-1)!;
    expect(last).toMatchObject({ kind: 'endpoints', set: { stale: false } });
    expect(last.kind === 'endpoints' && last.set.endpoints.map((e) => e.port)).toEqual([9]);
    await r.close();
  });
});

/**
 * A config version is checked whole: a reload that breaks a service setting and a config entry is
 * rejected with one error listing both (it listed the setting, and the entry only once the setting
 * was fixed), and `createMesh` refuses `configEntries` that is not an array, as
 * `checkConfigDocument` does (it was accepted and ignored).
 */
import { checkConfigDocument, createConfigSource, createMesh, MeshError, type MeshEvent } from 'proxyless';
import { describe, expect, it } from 'vitest';

const entries = [
  { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
  { Kind: 'service-resolver', Name: 'web', Subsets: { v1: { Filter: 'Service.Meta.version == "v1"' } } },
] as const;
const good = {
  services: { web: { endpoints: '127.0.0.1:1', timeout: '2s' } },
  configEntries: [
    ...entries,
    { Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: 100, ServiceSubset: 'v1' }] } as const,
  ],
};
const bad = {
  services: { web: { endpoints: '127.0.0.1:1', timeout: 'soon' } },
  configEntries: [
    ...entries,
    { Kind: 'service-splitter', Name: 'web', Splits: [{ Weight: 95, ServiceSubset: 'v1' }] } as const,
  ],
};

function fields(error: MeshError): string[] {
  return (error.details.issues ?? []).map((i) => i.field);
}

describe('a reloaded version is rejected with every problem it has', () => {
  it('a bad service setting and a bad config entry in one version: one rejection listing both', async () => {
    const source = createConfigSource('kv', good);
    const mesh = createMesh({ env: {}, configSource: source, passthrough: false });
    const events: MeshEvent[] = [];
    const off = mesh.onEvent((e) => events.push(e));
    try {
      source.update(bad);
      const rejected = events.filter((e) => e.type === 'config_rejected');
      expect(rejected).toHaveLength(1);
      const error = (rejected[0] as Extract<MeshEvent, { type: 'config_rejected' }>).error;
      expect(fields(error)).toEqual(['services.web.timeout', 'service-splitter/web Splits']);
      // The same problems checkConfigDocument lists for the document.
      let checked: MeshError | undefined;
      try {
        checkConfigDocument(bad);
      } catch (e) {
        checked = e as MeshError;
      }
      expect(checked && fields(checked)).toEqual(fields(error));
      // The version in force stays.
      expect(mesh.config('web').resilience.timeoutMs).toBe(2000);
    } finally {
      off.dispose();
      await mesh.close();
    }
  });
});

describe('configEntries that is not an array', () => {
  it('is refused by createMesh naming the field, as checkConfigDocument refuses it', () => {
    const document = { services: { web: { endpoints: '127.0.0.1:1' } }, configEntries: 5 };
    expect(() => checkConfigDocument(document)).toThrow(/configEntries/);
    let error: unknown;
    try {
      const mesh = createMesh({
        env: {},
        configSource: createConfigSource('kv', document as never),
        passthrough: false,
      });
      void mesh.close();
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    expect(fields(error as MeshError)).toContain('configEntries');
  });
});

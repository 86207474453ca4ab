import { describe, expect, it } from 'vitest';
import { MeshError } from '../index.js';
import { createMesh } from '../mesh.js';
import { checkConfigDocument } from './check.js';
import type { ServiceOptions } from './schema.js';
import { configDocumentJsonSchema } from './schema.js';

// `hashOn` is `{ header } | { cookie }`; its type lets the other member's key be `undefined` (so
// that `{ header, cookie }` fails to compile). The validator refused what the type allows:
// `{ header: 'x-user', cookie: undefined }` (a probe of the packed types against the validator).

const withUndefined: ServiceOptions = {
  endpoints: '127.0.0.1:1',
  loadBalancer: { policy: 'ring_hash', hashOn: { header: 'x-user', cookie: undefined } },
};

describe('a key of another union member, left undefined', () => {
  it('is as if left out, in the options and in a document', async () => {
    expect(checkConfigDocument({ services: { a: withUndefined } })).toEqual([]);
    const mesh = createMesh({ env: {}, passthrough: false, services: { a: withUndefined } });
    try {
      expect(mesh.config('a').balancer.loadBalancer.hashOn).toEqual({ header: 'x-user' });
    } finally {
      await mesh.close();
    }
  });

  it('with a value it is refused, naming the field and value', () => {
    let error: unknown;
    try {
      checkConfigDocument({
        services: { a: { loadBalancer: { policy: 'ring_hash', hashOn: { header: 'x-user', cookie: 'c' } } } },
      });
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    expect((error as MeshError).details.issues?.map((i) => i.field)).toEqual([
      'services.a.loadBalancer.hashOn',
    ]);
  });

  it('the generated JSON Schema carries no internal keyword', () => {
    expect(JSON.stringify(configDocumentJsonSchema())).not.toContain('x-absent');
  });
});

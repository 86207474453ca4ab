import { checkConfigDocument, createMesh } from 'proxyless';
import { describe, expect, it } from 'vitest';

// A request to these hosts goes straight through (destinationFor): endpoints and policy under
// such a name could never apply, so validation says so (probe2 names.ts).
describe('service names a request never reaches are rejected, saying why', () => {
  it.each([
    ['localhost', /`localhost` names are never services/],
    ['api.localhost', /`localhost` names are never services/],
    ['10.0.0.1', /last label is a number is an IPv4 address/],
    ['123', /last label is a number is an IPv4 address/],
    // probe25 config defect 4: punycode labels URL parsers refuse.
    ['xn--a', /an `xn--` label must be valid punycode/],
    ['api.xn--zz', /an `xn--` label must be valid punycode/],
  ])('%s in code options and in a document', (name, why) => {
    const quoted = JSON.stringify(name);
    expect(() => createMesh({ env: {}, services: { [name]: { endpoints: '127.0.0.1:9' } } })).toThrow(
      new RegExp(`options\\.services\\.${name.replace(/\./g, '\\.')}: expected .*${quoted}`),
    );
    expect(() => createMesh({ env: {}, services: { [name]: { endpoints: '127.0.0.1:9' } } })).toThrow(why);
    expect(() => checkConfigDocument({ services: { [name]: { retry: { maxRetries: 5 } } } })).toThrow(why);
  });

  it('keeps names that only look close: a digit first, a number inside, localhost as a prefix', () => {
    for (const name of [
      '1a',
      'api.v2',
      'a1.b2',
      'localhost2',
      'mylocalhost',
      'svc.10x',
      'xn--bcher-kva',
      'api.XN--80ak6aa92e',
    ])
      expect(() => checkConfigDocument({ services: { [name]: {} } }), name).not.toThrow();
  });

  it('a valid punycode name is reached (xn--bcher-kva, as the URL parser gives it)', async () => {
    const mesh = createMesh({
      env: {},
      services: { 'xn--bcher-kva': { endpoints: '127.0.0.1:9', retry: false } },
    });
    try {
      // Resolved as the service (its endpoint refuses the connection), not passed through to DNS.
      const error = await mesh.request('http://xn--bcher-kva/').catch((e: unknown) => e);
      expect((error as { code?: string }).code).toBe('MESH_CONNECT_FAILED');
    } finally {
      await mesh.close();
    }
  });
});

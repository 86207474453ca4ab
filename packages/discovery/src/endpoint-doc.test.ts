import { MeshError } from '@proxyless/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseEndpointSpec } from './endpoint-doc.js';

/** The outcome of a parse: the endpoints, or the error's code and message. */
function outcome(spec: string): unknown {
  try {
    return parseEndpointSpec(spec, 'endpoints');
  } catch (error) {
    return { code: (error as MeshError).code };
  }
}

describe('parseEndpointSpec', () => {
  it('reads host:port[=weight] lists: IPv4, IPv6 in brackets, DNS names', () => {
    expect(parseEndpointSpec('10.0.0.1:8080, [::1]:9090=3,api.internal:80=0', 'e')).toEqual([
      { address: '10.0.0.1', port: 8080 },
      { address: '::1', port: 9090, weight: 3 },
      { address: 'api.internal', port: 80, weight: 0 },
    ]);
  });

  it.each([
    ['10.0.0.1:0', 'port 0'],
    ['10.0.0.1:65536', 'port above 65535'],
    ['10.0.0.1:8080=1000001', 'weight above 1,000,000'],
    ['10.0.0.1', 'no port'],
    ['10.0.0.1:8080,', 'an empty item'],
    ['256.0.0.1:80', 'an octet above 255 (not a DNS name either: URL parsers read it as IPv4)'],
    ['10.0.0.1:8080=2,10.0.0.256:8080', 'a bad octet in the second item'],
  ])('rejects %s (%s), naming the field', (spec) => {
    let error: unknown;
    try {
      parseEndpointSpec(spec, 'services.api.endpoints');
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    expect((error as MeshError).message).toContain('services.api.endpoints');
  });

  it.each(['10.0.0.1:80=1000001', '10.0.0.1:80=2000000', '10.0.0.1:80=-1', 'api.internal:80=1e7'])(
    'states the weight range in the error for %s: 0..1000000, as the object form does',
    (spec) => {
      expect(() => parseEndpointSpec(spec, 'services.api.endpoints')).toThrow(
        `services.api.endpoints: expected host:port=weight with a weight 0..1000000 (in ${JSON.stringify(spec)})`,
      );
    },
  );

  it('reads IPv4 endpoints the same way whether the weight is in plain digits or not', () => {
    // `=W` in plain digits takes the one-match fast path; `=W.0` the general one. Same outcome.
    const octet = fc.integer({ min: 0, max: 300 });
    fc.assert(
      fc.property(
        fc.tuple(octet, octet, octet, octet),
        fc.integer({ min: 0, max: 70_000 }),
        fc.integer({ min: 0, max: 1_100_000 }),
        fc.constantFrom('', ' ', '  '),
        (ip, port, weight, pad) => {
          const host = ip.join('.');
          const fast = outcome(`${pad}${host}:${port}=${weight}${pad}`);
          expect(fast).toEqual(outcome(`${pad}${host}:${port}=${weight}.0${pad}`));
          const valid = ip.every((o) => o <= 255) && port >= 1 && port <= 65_535 && weight <= 1_000_000;
          if (ip.every((o) => o <= 255))
            expect(fast).toEqual(valid ? [{ address: host, port, weight }] : { code: 'MESH_CONFIG_INVALID' });
          // Without a weight: the fast path against the general path's own host and port reading.
          const bare = outcome(`${host}:${port}`);
          const general = outcome(`${host}:${port}=1.0`);
          expect(Array.isArray(bare)).toBe(Array.isArray(general));
          if (Array.isArray(bare)) expect(bare).toEqual([{ address: host, port }]);
        },
      ),
      { numRuns: 500 },
    );
  });
});

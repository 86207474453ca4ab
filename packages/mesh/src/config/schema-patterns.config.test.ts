/**
 * Rules docs/config-file.schema.json states with a `pattern` where the mesh checks them in code:
 * the schema rejects what the mesh rejects there, never what it accepts, and the mesh's message
 * names the field and the value.
 */
import { isValidHost, type MeshError } from '@proxyless/core';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { checkConfigDocument } from '../index.js';
import { CONSUL_LB_POLICIES, GO_DURATION_PATTERN, ROUTE_PATH_PATTERN } from '../routing/entries.js';
import { goDurationMs } from '../routing/entry-issues.js';
import { configDocumentJsonSchema, ENDPOINT_ADDRESS_PATTERN } from './schema.js';

const validate = new Ajv({ strict: true, allErrors: true }).compile(configDocumentJsonSchema());

/** A router entry for `web` with one route (and the `http` protocol routing needs). */
const router = (route: object) => ({
  configEntries: [
    { Kind: 'service-defaults', Name: 'web', Protocol: 'http' },
    { Kind: 'service-router', Name: 'web', Routes: [route] },
  ],
});

/** [what, document, field the mesh names, value its message quotes] */
const REJECTED: Array<[string, unknown, string, string]> = [
  // Blank names: the schema had only minLength 1 and accepted them.
  [
    'endpoint zone of spaces',
    { services: { api: { endpoints: [{ address: '10.0.0.1', port: 80, zone: ' ' }] } } },
    'services.api.endpoints[0].zone',
    ' ',
  ],
  [
    'endpoint id of a tab',
    { services: { api: { endpoints: [{ address: '10.0.0.1', port: 80, id: '\t' }] } } },
    'services.api.endpoints[0].id',
    '\t',
  ],
  [
    'loadBalancer.zone of spaces',
    { services: { api: { endpoints: '10.0.0.1:80', loadBalancer: { zone: '  ' } } } },
    'services.api.loadBalancer.zone',
    '  ',
  ],
  [
    'endpoint address with a space',
    { services: { api: { endpoints: [{ address: 'bad host', port: 80 }] } } },
    'services.api.endpoints[0].address',
    'bad host',
  ],
  [
    'RequestTimeout a word',
    router({ Destination: { RequestTimeout: 'soon' } }),
    'service-router/web Routes[0].Destination.RequestTimeout',
    'soon',
  ],
  [
    'ConnectTimeout negative',
    { configEntries: [{ Kind: 'service-resolver', Name: 'web', ConnectTimeout: '-5s' }] },
    'service-resolver/web ConnectTimeout',
    '-5s',
  ],
  [
    'PathPrefix without a leading /',
    router({ Match: { HTTP: { PathPrefix: 'api' } } }),
    'service-router/web Routes[0].Match.HTTP.PathPrefix',
    'api',
  ],
  [
    'two endpoints in one list item',
    { services: { api: { endpoints: ['10.0.0.1:80,10.0.0.2:80'] } } },
    'services.api.endpoints[0]',
    '10.0.0.1:80,10.0.0.2:80',
  ],
  // An enum in the schema (probe30 config defect 5): the schema took any string.
  [
    'LoadBalancer.Policy unknown',
    { configEntries: [{ Kind: 'service-resolver', Name: 'web', LoadBalancer: { Policy: 'weighted' } }] },
    'service-resolver/web LoadBalancer.Policy',
    'weighted',
  ],
  [
    'LoadBalancer.Policy in another case',
    { configEntries: [{ Kind: 'service-resolver', Name: 'web', LoadBalancer: { Policy: 'Maglev' } }] },
    'service-resolver/web LoadBalancer.Policy',
    'Maglev',
  ],
  [
    'PathExact without a leading /',
    router({ Match: { HTTP: { PathExact: 'api/v1' } } }),
    'service-router/web Routes[0].Match.HTTP.PathExact',
    'api/v1',
  ],
];

function meshError(doc: unknown): MeshError | undefined {
  try {
    checkConfigDocument(doc);
    return undefined;
  } catch (e) {
    return e as MeshError;
  }
}

describe('patterns in the JSON Schema', () => {
  it.each(REJECTED)(
    '%s: rejected by the schema and by the mesh, naming field and value',
    (_w, doc, field, value) => {
      expect(validate(doc)).toBe(false);
      const error = meshError(doc);
      expect(error?.code).toBe('MESH_CONFIG_INVALID');
      const issue = error?.details.issues?.find((i) => i.field === field);
      expect(issue, error?.message).toBeDefined();
      expect(issue?.value).toEqual(value);
      expect(error?.message).toContain(JSON.stringify(value));
    },
  );

  it('accepts the valid spellings the mesh accepts', () => {
    const docs = [
      router({ Match: { HTTP: { PathPrefix: '/api' } }, Destination: { RequestTimeout: '1m30.5s' } }),
      router({ Match: { HTTP: { PathExact: '' } }, Destination: { RequestTimeout: '0', IdleTimeout: 5e9 } }),
      // Every LoadBalancer.Policy the mesh takes (`""` is Envoy's default, round robin).
      ...CONSUL_LB_POLICIES.map((Policy) => ({
        configEntries: [{ Kind: 'service-resolver', Name: 'web', LoadBalancer: { Policy } }],
      })),
      {
        services: {
          api: {
            endpoints: [
              { address: '[::1]', port: 80 },
              { address: 'fe80::1', port: 81 },
            ],
          },
        },
      },
    ];
    for (const doc of docs) {
      expect(meshError(doc)).toBeUndefined();
      expect(validate(doc)).toBe(true);
    }
  });

  it('GO_DURATION_PATTERN is goDurationMs on strings', () => {
    const re = new RegExp(GO_DURATION_PATTERN, 'u');
    const samples = [
      '0',
      '5s',
      '1m30s',
      '1.5h',
      '.5s',
      '5.s',
      '100ns',
      '3us',
      '3µs',
      '3μs',
      '250ms',
      '1h2m3s4ms',
    ];
    const bad = ['', 'soon', '5', '-5s', '+5s', ' 5s', '5s ', '5S', '1d', '0s0', '00', '.s', 's'];
    for (const v of [...samples, ...bad])
      expect({ v, re: re.test(v) }).toEqual({ v, re: goDurationMs(v) !== undefined });
  });

  it('ROUTE_PATH_PATTERN is the mesh’s rule: empty, or starting with /', () => {
    const re = new RegExp(ROUTE_PATH_PATTERN, 'u');
    for (const v of ['', '/', '/api', '//x']) expect(re.test(v)).toBe(true);
    for (const v of ['api', ' /api', 'x/']) expect(re.test(v)).toBe(false);
  });

  it('ENDPOINT_ADDRESS_PATTERN accepts every address the mesh accepts', () => {
    const re = new RegExp(ENDPOINT_ADDRESS_PATTERN, 'u');
    const valid = [
      'a',
      'api.internal',
      'host.example.com.',
      '_svc.local',
      '10.0.0.1',
      '::1',
      'fe80::1',
      '::ffff:10.0.0.1',
      `${'a'.repeat(63)}.b`,
    ];
    for (const v of valid) {
      expect(isValidHost(v)).toBe(true);
      expect({ v, re: re.test(v) }).toEqual({ v, re: true });
    }
    expect(re.test('[::1]')).toBe(true);
    // A zone id: undici cannot dial it, the schema and the mesh both refuse it.
    for (const v of ['fe80::1%eth0', '[fe80::1%eth0]'])
      expect({ v, re: re.test(v) }).toEqual({ v, re: false });
    expect(
      meshError({ services: { api: { endpoints: [{ address: 'fe80::1%eth0', port: 81 }] } } }),
    ).toBeDefined();
    for (const v of ['bad host', 'a/b', 'a:b@c', '-a', 'a..b', `${'a'.repeat(64)}.b`, 'über'])
      expect({ v, re: re.test(v), mesh: isValidHost(v) }).toEqual({ v, re: false, mesh: false });
  });
});

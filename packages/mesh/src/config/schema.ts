import { balancerProperties } from '@proxyless/balancer';
import {
  type EndpointInit,
  Fields,
  FOREIGN_NAMES,
  foreignNames,
  type ReadonlyArrays,
  type Static,
  Type,
} from '@proxyless/core';

export type { ReadonlyArrays };

import { resilienceProperties } from '@proxyless/resilience';
import { ConfigEntrySchema } from '../routing/entries.js';

/** Every policy section of a service entry (balancer's and resilience's), by key. */
export const policyProperties = { ...balancerProperties, ...resilienceProperties };

/** Keys a service entry (in options or the config document) may hold besides `endpoints`. */
export const POLICY_KEYS: readonly string[] = Object.freeze(Object.keys(policyProperties));

/**
 * Keys a service's policy has in Istio's `DestinationRule`/`VirtualService` or Envoy's cluster and
 * route, where this mesh says the same elsewhere: an unknown key whose message says where.
 */
const POLICY_FOREIGN_NAMES = foreignNames({
  connectionPool: {
    use: 'circuitBreaker.maxConnections, circuitBreaker.maxRequests, and circuitBreaker.maxPendingRequests with a concurrencyLimit queue',
    from: "Istio's connectionPool, Envoy's circuit_breakers thresholds",
  },
  retries: { use: 'retry (maxRetries, retryOn, backoff…)', from: "Istio's retries" },
  retryPolicy: { use: 'retry (maxRetries, retryOn, backoff…)', from: "Envoy's route retry_policy" },
  trafficPolicy: {
    use: 'the sections themselves, at the top of the service entry (loadBalancer, outlierDetection, circuitBreaker…)',
    from: "Istio's DestinationRule trafficPolicy",
  },
  fault: { use: 'faultInjection', from: "Istio's fault" },
  lbPolicy: { use: 'loadBalancer.policy', from: "Envoy's cluster lb_policy" },
});

/**
 * The policy of a service (or of all, in `defaults`): every section typed, unknown keys rejected.
 * See docs/policies.md and docs/load-balancing.md.
 */
export const policySchema = Fields(policyProperties, {
  description:
    'Policy sections: false turns one off, an object configures it, true means its defaults where it has them.',
  ...POLICY_FOREIGN_NAMES,
});

/**
 * An endpoint's `address` as the JSON Schema can say it: an IPv6 literal (bare, or in brackets as
 * in URLs; no zone id, which undici's URL-based pools cannot dial), or a host name or IPv4 address
 * by its characters and labels. The mesh checks more (`isValidHost`): IPv6 groups, IPv4 octets, a
 * numeric last label that is no IPv4 address.
 */
export const ENDPOINT_ADDRESS_PATTERN =
  '^(\\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\\]|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*|[A-Za-z0-9_][A-Za-z0-9_-]{0,62}(\\.[A-Za-z0-9_][A-Za-z0-9_-]{0,62})*\\.?)$';

/** Endpoints as written in the config document (validated by discovery's endpoint parser). */
export const endpointsSchema = Type.Union(
  [
    Type.String({ description: '`host:port[=weight]` list, comma-separated; IPv6 in brackets.' }),
    Type.Array(
      Type.Union([
        // One endpoint per item (the mesh checks it, naming the item).
        Type.String({ description: 'one `host:port[=weight]`', 'x-schema-pattern': '^[^,]*$' }),
        Type.Object(
          {
            address: Type.String({
              minLength: 1,
              pattern: ENDPOINT_ADDRESS_PATTERN,
              expected: 'an IPv4 or IPv6 address or a host name',
            }),
            port: Type.Integer({ minimum: 1, maximum: 65535 }),
            // Not blank: the mesh refuses a name of only spaces, as a missing one.
            id: Type.Optional(Type.String({ minLength: 1, pattern: '\\S', expected: 'a non-empty string' })),
            weight: Type.Optional(Type.Number({ minimum: 0, maximum: 1_000_000 })),
            zone: Type.Optional(
              Type.String({ minLength: 1, pattern: '\\S', expected: 'a non-empty string' }),
            ),
            priority: Type.Optional(
              Type.Integer({
                minimum: 0,
                maximum: 65_535,
                description:
                  'Priority level: 0 (the default) takes the traffic; a higher level gets it only as the lower ones lose healthy endpoints (Envoy priorities, SRV priority).',
              }),
            ),
            tags: Type.Optional(Type.Array(Type.String())),
            metadata: Type.Optional(Type.Record(Type.String(), Type.String())),
            health: Type.Optional(
              Type.Union([Type.Literal('passing'), Type.Literal('warning'), Type.Literal('critical')]),
            ),
          },
          { additionalProperties: false },
        ),
      ]),
    ),
  ],
  { description: 'Endpoints of the service.' },
);

/** A service entry of the config document: endpoints plus policy. */
export const serviceEntrySchema = Fields(
  { endpoints: Type.Optional(endpointsSchema), ...policyProperties },
  POLICY_FOREIGN_NAMES,
);

/** The characters of a service name: letters, digits, `-`, `_` and `.`, alphanumeric at both ends. */
export const SERVICE_NAME_CHARS = '^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$';

/**
 * Service names: {@link SERVICE_NAME_CHARS}, less the names a request never reaches a service
 * under (as `destinationFor` reads a URL host): `localhost` and `*.localhost` (RFC 6761), and
 * names whose last label is a number (`10.0.0.1`, `123`, `0x1f`), which the WHATWG URL parser
 * takes for an IPv4 address. JSON Schema patterns have no flags: case is spelled in classes.
 */
export const SERVICE_NAME_PATTERN =
  '^(?!(.*\\.)?[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt]$)(?!(.*\\.)?([0-9]+|0[Xx][0-9A-Fa-f]*)$)[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$';

/** The config document (`MESH_CONFIG_FILE`, and later registry config entries). */
export const configDocumentSchema = Fields(
  {
    $schema: Type.Optional(Type.String()),
    defaults: Type.Optional(policySchema),
    services: Type.Optional(
      Type.Record(Type.String({ pattern: SERVICE_NAME_PATTERN }), serviceEntrySchema, {
        additionalProperties: false,
        'x-key-expected':
          'a service name of letters, digits, `-`, `_` and `.` that starts and ends with a letter or digit',
      }),
    ),
    configEntries: Type.Optional(
      Type.Array(ConfigEntrySchema, {
        description:
          'Consul config entries (service-router, service-splitter, service-resolver, service-defaults) exactly as `consul config write` takes them; validated as a whole set (see docs/traffic-management.md).',
      }),
    ),
  },
  {
    $id: 'https://proxyless.dev/schema/config-file.schema.json',
    title: 'proxyless config document',
    description:
      'Services, their endpoints and policy; `defaults` applies to every service. Generated from the section schemas.',
  },
);

/**
 * Policy settings for a service (or for all, in `defaults`), in the config document's shape:
 * every section typed, so editors complete the keys and a misspelt key fails to compile.
 * Arrays may be readonly (`retryOn: RETRY_ON` with `const RETRY_ON = [...] as const`).
 */
export type PolicyOptions = ReadonlyArrays<Static<typeof policySchema>>;

/** A service known from options: endpoints (optional if a registry knows it) and policy. */
export interface ServiceOptions extends PolicyOptions {
  /**
   * A comma-separated `host:port[=weight]` list, or a list whose items are each an endpoint object
   * or one `host:port[=weight]` string (the config document's shapes).
   */
  endpoints?: readonly (EndpointInit | string)[] | string;
}

/** The config document as written. Arrays may be readonly (a document declared `as const`). */
export type ConfigDocument = ReadonlyArrays<Static<typeof configDocumentSchema>>;

/**
 * The JSON Schema of the config document (docs/config-file.schema.json is generated from it).
 *
 * Standard draft-07 keywords only, so that strict validators (Ajv's default mode rejects unknown
 * keywords) and editors take it as it is. The declarations' own annotations stay out of it: the
 * message texts the mesh's validator uses (`expected`, `x-key-expected`), its kind markers
 * (`x-enum`, `x-allow-true`) and the duration bounds it checks itself (`x-min-ms`, `x-max-ms`).
 * The environment variable of a field (`x-env`) is named in its description instead, and a
 * config entry's `x-schema-pattern` and `x-schema-enum` (checked by the mesh in Consul's words)
 * become `pattern` and `enum`.
 */
export function configDocumentJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    ...(standardSchema(JSON.parse(JSON.stringify(configDocumentSchema))) as Record<string, unknown>),
  };
}

/** Annotations of the declarations that are not JSON Schema keywords. */
const INTERNAL_KEYWORDS = new Set([
  'expected',
  'x-key-expected',
  'x-enum',
  'x-allow-true',
  'x-min-ms',
  'x-max-ms',
  'x-env',
  'x-schema-pattern',
  'x-schema-enum',
  'x-absent',
  FOREIGN_NAMES,
]);
/** Keywords whose value maps names to subschemas. */
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', 'definitions', '$defs', 'dependencies']);
/** Keywords whose value is a subschema or a list of them. */
const SUBSCHEMAS = new Set([
  'anyOf',
  'allOf',
  'oneOf',
  'not',
  'items',
  'additionalItems',
  'additionalProperties',
  'contains',
  'propertyNames',
  'if',
  'then',
  'else',
]);

function standardSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(standardSchema);
  if (typeof schema !== 'object' || schema === null) return schema;
  const s = schema as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (INTERNAL_KEYWORDS.has(k)) continue;
    if (SCHEMA_MAPS.has(k) && typeof v === 'object' && v !== null)
      out[k] = Object.fromEntries(Object.entries(v).map(([name, sub]) => [name, standardSchema(sub)]));
    else if (SUBSCHEMAS.has(k)) out[k] = standardSchema(v);
    else out[k] = v;
  }
  // A rule the mesh checks after the structural check, in its own words (config entries).
  if (typeof s['x-schema-pattern'] === 'string') out.pattern = s['x-schema-pattern'];
  if (Array.isArray(s['x-schema-enum'])) out.enum = s['x-schema-enum'];
  if (typeof s['x-env'] === 'string') {
    const env = `Environment variable: ${s['x-env']}.`;
    out.description = typeof out.description === 'string' ? `${out.description} ${env}` : env;
  }
  return out;
}

/**
 * Consul's discovery-chain config entries as `consul config write` accepts them in JSON
 * (`Kind`, `Name`, PascalCase fields): `service-router`, `service-splitter`,
 * `service-resolver`, `service-defaults`. One TypeBox schema per kind gives the TypeScript type
 * and the structural validator; `validate.ts` adds the rules a schema cannot say (Consul's
 * `Validate()` methods in `agent/structs/config_entry_discoverychain.go`).
 *
 * Read-back fields (`CreateIndex`, `ModifyIndex`, `Hash`) and `Meta` are accepted so that
 * `consul config read` output can be pasted as is. `Namespace`/`Partition` are accepted when
 * empty or `default` (Consul CE).
 */
import { type Static, type TSchema, Type } from '@proxyless/core';

const Str = Type.String();
const Opt = <T extends TSchema>(t: T) => Type.Optional(t);
const Closed = { additionalProperties: false } as const;

/**
 * `x-schema-pattern`: a rule docs/config-file.schema.json states as a `pattern`, which the mesh
 * checks after the structural check, in Consul's words and with the entry's other rules
 * (validate.ts): the structural validator leaves it alone, so one bad field does not hide the
 * entry's other problems.
 */
const schemaPattern = (pattern: string) => ({ 'x-schema-pattern': pattern });

/**
 * `x-schema-enum`: the values docs/config-file.schema.json states as an `enum`, which the mesh
 * checks after the structural check, in Consul's words (as `x-schema-pattern`).
 */
const schemaEnum = (values: readonly string[]) => ({ 'x-schema-enum': [...values] });

/** `service-resolver` `LoadBalancer.Policy` values (`""` is Envoy's default, round robin). */
export const CONSUL_LB_POLICIES: readonly string[] = Object.freeze([
  '',
  'random',
  'round_robin',
  'least_request',
  'ring_hash',
  'maglev',
]);

/** A Go duration string as the mesh reads it (`goDurationMs`): `0`, or numbers with units, no sign. */
export const GO_DURATION_PATTERN = '^(0|((\\d+(\\.\\d*)?|\\.\\d+)(ns|us|µs|μs|ms|s|m|h))+)$';

/** Go duration string (`"5s"`, `"1m30s"`) or integer nanoseconds (how Go marshals `time.Duration`). */
export const DurationSchema = Type.Union([
  Type.String(schemaPattern(GO_DURATION_PATTERN)),
  Type.Number({ minimum: 0 }),
]);

/** `PathExact` / `PathPrefix`: empty (unset) or starting with `/`. */
export const ROUTE_PATH_PATTERN = '^(/|$)';
const RoutePath = Type.String(schemaPattern(ROUTE_PATH_PATTERN));

const CommonFields = {
  Name: Type.String(),
  Namespace: Opt(Str),
  Partition: Opt(Str),
  Meta: Opt(Type.Record(Type.String(), Type.String())),
  CreateIndex: Opt(Type.Integer()),
  ModifyIndex: Opt(Type.Integer()),
  Hash: Opt(Type.Union([Type.Integer(), Type.String()])),
};

/** `RequestHeaders` / `ResponseHeaders`: header edits applied on the way out / back. */
export const HeaderModifiersSchema = Type.Object(
  {
    Add: Opt(Type.Record(Type.String(), Type.String())),
    Set: Opt(Type.Record(Type.String(), Type.String())),
    Remove: Opt(Type.Array(Type.String())),
  },
  Closed,
);
export type HeaderModifiers = Static<typeof HeaderModifiersSchema>;

export const HeaderMatchSchema = Type.Object(
  {
    Name: Type.String(),
    Present: Opt(Type.Boolean()),
    Exact: Opt(Str),
    Prefix: Opt(Str),
    Suffix: Opt(Str),
    Regex: Opt(Str),
    Invert: Opt(Type.Boolean()),
  },
  Closed,
);
export type HeaderMatch = Static<typeof HeaderMatchSchema>;

export const QueryParamMatchSchema = Type.Object(
  { Name: Type.String(), Present: Opt(Type.Boolean()), Exact: Opt(Str), Regex: Opt(Str) },
  Closed,
);
export type QueryParamMatch = Static<typeof QueryParamMatchSchema>;

export const HttpMatchSchema = Type.Object(
  {
    PathExact: Opt(RoutePath),
    PathPrefix: Opt(RoutePath),
    PathRegex: Opt(Str),
    Header: Opt(Type.Array(HeaderMatchSchema)),
    QueryParam: Opt(Type.Array(QueryParamMatchSchema)),
    Methods: Opt(Type.Array(Type.String())),
  },
  Closed,
);
export type HttpMatch = Static<typeof HttpMatchSchema>;

export const RouteDestinationSchema = Type.Object(
  {
    Service: Opt(Str),
    ServiceSubset: Opt(Str),
    Namespace: Opt(Str),
    Partition: Opt(Str),
    PrefixRewrite: Opt(Str),
    RequestTimeout: Opt(DurationSchema),
    IdleTimeout: Opt(DurationSchema),
    NumRetries: Opt(Type.Integer({ minimum: 0 })),
    RetryOnConnectFailure: Opt(Type.Boolean()),
    RetryOn: Opt(Type.Array(Type.String())),
    RetryOnStatusCodes: Opt(Type.Array(Type.Integer({ minimum: 100, maximum: 599 }))),
    RequestHeaders: Opt(HeaderModifiersSchema),
    ResponseHeaders: Opt(HeaderModifiersSchema),
  },
  Closed,
);
export type RouteDestination = Static<typeof RouteDestinationSchema>;

export const ServiceRouteSchema = Type.Object(
  {
    Match: Opt(Type.Object({ HTTP: Opt(HttpMatchSchema) }, Closed)),
    Destination: Opt(RouteDestinationSchema),
  },
  Closed,
);
export type ServiceRoute = Static<typeof ServiceRouteSchema>;

export const ServiceRouterSchema = Type.Object(
  { Kind: Type.Literal('service-router'), ...CommonFields, Routes: Opt(Type.Array(ServiceRouteSchema)) },
  Closed,
);
export type ServiceRouterEntry = Static<typeof ServiceRouterSchema>;

export const SplitSchema = Type.Object(
  {
    Weight: Type.Number(),
    Service: Opt(Str),
    ServiceSubset: Opt(Str),
    Namespace: Opt(Str),
    Partition: Opt(Str),
    RequestHeaders: Opt(HeaderModifiersSchema),
    ResponseHeaders: Opt(HeaderModifiersSchema),
  },
  Closed,
);
export type Split = Static<typeof SplitSchema>;

export const ServiceSplitterSchema = Type.Object(
  { Kind: Type.Literal('service-splitter'), ...CommonFields, Splits: Opt(Type.Array(SplitSchema)) },
  Closed,
);
export type ServiceSplitterEntry = Static<typeof ServiceSplitterSchema>;

const TargetRefFields = {
  Service: Opt(Str),
  ServiceSubset: Opt(Str),
  Namespace: Opt(Str),
  Partition: Opt(Str),
  Datacenter: Opt(Str),
  Peer: Opt(Str),
};

export const SubsetSchema = Type.Object(
  { Filter: Opt(Str), OnlyPassing: Opt(Type.Boolean()), Description: Opt(Str) },
  Closed,
);
export type Subset = Static<typeof SubsetSchema>;

export const RedirectSchema = Type.Object({ ...TargetRefFields, SamenessGroup: Opt(Str) }, Closed);
export type Redirect = Static<typeof RedirectSchema>;

export const FailoverTargetSchema = Type.Object(TargetRefFields, Closed);
export type FailoverTarget = Static<typeof FailoverTargetSchema>;

export const FailoverSchema = Type.Object(
  {
    Service: Opt(Str),
    ServiceSubset: Opt(Str),
    Namespace: Opt(Str),
    Datacenters: Opt(Type.Array(Type.String())),
    Targets: Opt(Type.Array(FailoverTargetSchema)),
    SamenessGroup: Opt(Str),
    Policy: Opt(Type.Object({ Mode: Opt(Str), Regions: Opt(Type.Array(Type.String())) }, Closed)),
  },
  Closed,
);
export type Failover = Static<typeof FailoverSchema>;

export const HashPolicySchema = Type.Object(
  {
    Field: Opt(Str),
    FieldValue: Opt(Str),
    CookieConfig: Opt(
      Type.Object({ Session: Opt(Type.Boolean()), TTL: Opt(DurationSchema), Path: Opt(Str) }, Closed),
    ),
    SourceIP: Opt(Type.Boolean()),
    Terminal: Opt(Type.Boolean()),
  },
  Closed,
);
export type HashPolicy = Static<typeof HashPolicySchema>;

export const LoadBalancerSchema = Type.Object(
  {
    Policy: Opt(Type.String(schemaEnum(CONSUL_LB_POLICIES))),
    LeastRequestConfig: Opt(Type.Object({ ChoiceCount: Opt(Type.Integer({ minimum: 0 })) }, Closed)),
    RingHashConfig: Opt(
      Type.Object(
        {
          MinimumRingSize: Opt(Type.Integer({ minimum: 0 })),
          MaximumRingSize: Opt(Type.Integer({ minimum: 0 })),
        },
        Closed,
      ),
    ),
    HashPolicies: Opt(Type.Array(HashPolicySchema)),
  },
  Closed,
);
export type LoadBalancer = Static<typeof LoadBalancerSchema>;

export const ServiceResolverSchema = Type.Object(
  {
    Kind: Type.Literal('service-resolver'),
    ...CommonFields,
    DefaultSubset: Opt(Str),
    Subsets: Opt(Type.Record(Type.String(), SubsetSchema)),
    Redirect: Opt(RedirectSchema),
    Failover: Opt(Type.Record(Type.String(), FailoverSchema)),
    ConnectTimeout: Opt(DurationSchema),
    RequestTimeout: Opt(DurationSchema),
    LoadBalancer: Opt(LoadBalancerSchema),
  },
  Closed,
);
export type ServiceResolverEntry = Static<typeof ServiceResolverSchema>;

/**
 * `service-defaults`: proxyless reads `Protocol`; Consul's other fields are accepted and kept
 * (so the same entry can be written to Consul and to a file) but have no effect here.
 */
export const ServiceDefaultsSchema = Type.Object(
  {
    Kind: Type.Literal('service-defaults'),
    ...CommonFields,
    Protocol: Opt(Str),
    Mode: Opt(Str),
    TransparentProxy: Opt(Type.Unknown()),
    MutualTLSMode: Opt(Str),
    MeshGateway: Opt(Type.Unknown()),
    Expose: Opt(Type.Unknown()),
    ExternalSNI: Opt(Str),
    UpstreamConfig: Opt(Type.Unknown()),
    Destination: Opt(Type.Unknown()),
    MaxInboundConnections: Opt(Type.Integer()),
    LocalConnectTimeoutMs: Opt(Type.Integer()),
    LocalRequestTimeoutMs: Opt(Type.Integer()),
    BalanceInboundConnections: Opt(Str),
    RateLimits: Opt(Type.Unknown()),
    EnvoyExtensions: Opt(Type.Unknown()),
  },
  Closed,
);
export type ServiceDefaultsEntry = Static<typeof ServiceDefaultsSchema>;

/** Any config entry this module understands. */
export type ConfigEntry =
  | ServiceRouterEntry
  | ServiceSplitterEntry
  | ServiceResolverEntry
  | ServiceDefaultsEntry;

/** The kinds this module understands, in Consul's spelling. */
export type ConfigEntryKind = ConfigEntry['Kind'];

/**
 * Any supported entry, one variant per kind: the config document's `configEntries` items (typed:
 * a misspelt field or kind in an entry fails to compile).
 */
export const ConfigEntrySchema = Type.Union([
  ServiceRouterSchema,
  ServiceSplitterSchema,
  ServiceResolverSchema,
  ServiceDefaultsSchema,
]);

/** Every supported kind with its schema. */
export const CONFIG_ENTRY_SCHEMAS: Readonly<Record<ConfigEntryKind, TSchema>> = Object.freeze({
  'service-router': ServiceRouterSchema,
  'service-splitter': ServiceSplitterSchema,
  'service-resolver': ServiceResolverSchema,
  'service-defaults': ServiceDefaultsSchema,
});

/** Supported kinds, in documentation order. */
export const CONFIG_ENTRY_KINDS: readonly ConfigEntryKind[] = Object.freeze(
  Object.keys(CONFIG_ENTRY_SCHEMAS) as ConfigEntryKind[],
);

/** Retry conditions a route may name (Consul's `ServiceRouteDestination.RetryOn`). */
export const RETRY_ON_CONDITIONS: readonly string[] = Object.freeze([
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'envoy-ratelimited',
  'retriable-4xx',
  'refused-stream',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
]);

/** HTTP methods a route may match (Consul upper-cases them first). */
export const ROUTE_METHODS: readonly string[] = Object.freeze([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
]);

import {
  Duration,
  envVar,
  Fields,
  foreignNames,
  type Issues,
  OneOf,
  omitKeys,
  parseDuration,
  type Static,
  type TSchema,
  Type,
} from '@proxyless/core';
import { type ConnectBackoffConfig, DEFAULT_CONNECT_BACKOFF } from '../connectivity.js';
import { connectBackoffPatch, connectBackoffRules, connectBackoffSchema } from './connect-backoff.js';

/**
 * Load-balancing policies. Names match Consul's `service-resolver` `LoadBalancer.Policy` values
 * where they overlap (`round_robin`, `random`, `least_request`, `ring_hash`, `maglev`).
 */

/** An HTTP token (RFC 9110 §5.6.2): what a header or cookie name may be. */
const HTTP_TOKEN = "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$";
export type LoadBalancerPolicy =
  | 'round_robin'
  | 'random'
  | 'weighted_round_robin'
  | 'least_request'
  | 'peak_ewma'
  | 'ring_hash'
  | 'maglev';

/** Every policy name, in documentation order. */
export const LOAD_BALANCER_POLICIES: readonly LoadBalancerPolicy[] = Object.freeze([
  'round_robin',
  'random',
  'weighted_round_robin',
  'least_request',
  'peak_ewma',
  'ring_hash',
  'maglev',
]);

/**
 * Where `ring_hash` and `maglev` take the request's hash key from when the call carries no
 * `hashKey` attribute: a request header, a cookie, or the caller's source address.
 */
export type HashOn = { readonly header: string } | { readonly cookie: string } | 'source';

/** Slow start: a new endpoint's weight ramps up over `window` (Envoy semantics). */
export interface SlowStartConfig {
  /** Ramp-up window in milliseconds. */
  readonly window: number;
  /** Curve exponent: weight × (t / window)^(1 / aggression). 1 is linear. @defaultValue 1 */
  readonly aggression: number;
  /** Lower bound of the ramp, percent of the full weight. @defaultValue 10 */
  readonly minWeightPercent: number;
}

/** Resolved `loadBalancer` settings. */
export interface LoadBalancerConfig {
  /** @defaultValue 'round_robin' */
  readonly policy: LoadBalancerPolicy;
  /** Candidates compared by `least_request` and `peak_ewma`. @defaultValue 2 */
  readonly choiceCount: number;
  /** `peak_ewma` decay time, ms. @defaultValue 10000 */
  readonly decayTime: number;
  /** `peak_ewma` latency assumed for endpoints never measured, ms. @defaultValue 30 */
  readonly defaultRtt: number;
  /** `ring_hash` minimum ring size. @defaultValue 1024 */
  readonly minRingSize: number;
  /** `ring_hash` maximum ring size. @defaultValue 8388608 */
  readonly maxRingSize: number;
  /** `maglev` lookup table size (a prime). @defaultValue 65537 */
  readonly tableSize: number;
  /** Hash key source for `ring_hash`/`maglev` when the call has no `hashKey` attribute. */
  readonly hashOn?: HashOn;
  /** The caller's zone; same-zone endpoints are preferred when set. */
  readonly zone?: string;
  /** Minimum percentage of healthy endpoints in the local zone to keep traffic local. @defaultValue 70 */
  readonly localityMinHealthyPercent: number;
  /** Below this percentage of usable endpoints, balance over all of them. @defaultValue 50 */
  readonly panicThreshold: number;
  /** Ramp-up of new endpoints; off when absent. */
  readonly slowStart?: SlowStartConfig;
  /**
   * When no endpoint is reachable (every one in `TRANSIENT_FAILURE`), wait within the call's
   * deadline for one to reconnect instead of failing at once (gRPC's `waitForReady`).
   * @defaultValue false
   */
  readonly waitForReady: boolean;
  /**
   * Pacing of the reconnect attempts of an endpoint whose connect failed (`TRANSIENT_FAILURE`):
   * it takes traffic again at the first one that connects.
   */
  readonly connectBackoff: ConnectBackoffConfig;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** `loadBalancer` settings from one layer. */
export type LoadBalancerPatch = Partial<Mutable<Omit<LoadBalancerConfig, 'slowStart' | 'connectBackoff'>>> & {
  slowStart?: Partial<Mutable<SlowStartConfig>>;
  connectBackoff?: Partial<Mutable<ConnectBackoffConfig>>;
};

/**
 * `loadBalancer` defaults: Envoy's (round robin; P2C with 2 choices; ring 1024..8M; Maglev
 * table 65537; panic below 50 % usable; locality kept while 70 % healthy, as Envoy's overprovisioning
 * factor 1.4 implies). Peak EWMA decays over 10 s and assumes 30 ms for unmeasured endpoints (Finagle).
 */
export const DEFAULT_LOAD_BALANCER: LoadBalancerConfig = Object.freeze({
  policy: 'round_robin',
  choiceCount: 2,
  decayTime: 10_000,
  defaultRtt: 30,
  minRingSize: 1024,
  maxRingSize: 8_388_608,
  tableSize: 65_537,
  localityMinHealthyPercent: 70,
  panicThreshold: 50,
  waitForReady: false,
  connectBackoff: DEFAULT_CONNECT_BACKOFF,
});

/** Slow-start defaults once a `slowStart` is set: 30 s, linear, from 10 % (Envoy). */
export const DEFAULT_SLOW_START: SlowStartConfig = Object.freeze({
  window: 30_000,
  aggression: 1,
  minWeightPercent: 10,
});

const D = DEFAULT_LOAD_BALANCER;
const percent = (def: number, description: string, more: object = {}) =>
  Type.Optional(Type.Number({ minimum: 0, maximum: 100, default: def, description, ...more }));

/** The fields of `loadBalancer`. */
/** Where `ring_hash`/`maglev` read the hash key from: one header, one cookie, or the source address. */
const hashOnSchema = Type.Union(
  [
    Type.Literal('source'),
    // `x-absent`: the other member's key, which the type (`Exclusive`) allows as `undefined`.
    Fields(
      { header: Type.String({ pattern: HTTP_TOKEN, expected: 'an HTTP header name' }) },
      { 'x-absent': ['cookie'] },
    ),
    Fields(
      { cookie: Type.String({ pattern: HTTP_TOKEN, expected: 'a cookie name' }) },
      { 'x-absent': ['header'] },
    ),
  ],
  {
    expected: '{ header: name }, { cookie: name } or "source"',
    description: 'Hash key of `ring_hash`/`maglev` when the call has no `hashKey`.',
  },
);

/**
 * The object members of a union, each with the other members' keys as `never`: TypeScript lets an
 * object literal carry a key of another member of a union (`{ header, cookie }` compiles as
 * `{ header } | { cookie }`), where `additionalProperties: false` rejects it.
 */
type Exclusive<U, All extends PropertyKey = U extends object ? keyof U : never> = U extends object
  ? U & { [K in Exclude<All, keyof U>]?: never }
  : U;

/**
 * `schema` itself (the same JSON Schema and validation: `Unsafe` keeps its kind), typed so that
 * its object members exclude each other's keys, as the validator does.
 */
function exclusive<T extends TSchema>(schema: T) {
  return Type.Unsafe<Exclusive<Static<T>>>(schema);
}

export const loadBalancerFields = Fields(
  {
    policy: Type.Optional(
      OneOf(LOAD_BALANCER_POLICIES, {
        default: D.policy,
        description: 'One of the policies above (Envoy/Consul names).',
        ...envVar(
          'MESH_LB_POLICY',
          'Load-balancing policy for every service without its own `loadBalancer.policy`.',
          {
            type: LOAD_BALANCER_POLICIES.join(' | '),
          },
        ),
      }),
    ),
    choiceCount: Type.Optional(
      Type.Integer({
        minimum: 2,
        maximum: 100,
        default: D.choiceCount,
        description:
          'Candidates compared by `least_request` and `peak_ewma` (power of two choices); `least_request` over endpoints of different weights uses a weighted schedule instead, as Envoy does.',
        ...envVar(
          'MESH_LB_CHOICE_COUNT',
          'Candidates compared per pick by `least_request` and `peak_ewma`.',
          {
            type: 'integer 2..100',
          },
        ),
      }),
    ),
    decayTime: Type.Optional(
      Duration({
        min: 1,
        default: D.decayTime,
        description: '`peak_ewma` latency decay time (Finagle: 10 s).',
        ...envVar('MESH_LB_DECAY_TIME', '`peak_ewma` latency decay time.', { type: 'duration ≥ 1ms' }),
      }),
    ),
    defaultRtt: Type.Optional(
      Duration({ default: D.defaultRtt, description: '`peak_ewma` latency assumed before a measurement.' }),
    ),
    minRingSize: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 8_388_608,
        default: D.minRingSize,
        description: '`ring_hash` minimum number of ring points (Envoy: 1024).',
      }),
    ),
    maxRingSize: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 8_388_608,
        default: D.maxRingSize,
        description: '`ring_hash` maximum ring size (Envoy: 8M).',
      }),
    ),
    tableSize: Type.Optional(
      Type.Integer({
        minimum: 3,
        maximum: 5_000_011,
        default: D.tableSize,
        description:
          '`maglev` table size; a prime larger than the number of endpoints (Envoy: 65537). The endpoints are known only at run time: a table smaller than them is logged as a warning (some endpoints get no traffic).',
      }),
    ),
    hashOn: Type.Optional(exclusive(hashOnSchema)),
    zone: Type.Optional(
      Type.String({
        minLength: 1,
        // Not blank: no endpoint has a blank zone (the mesh refuses one), so it could match none.
        pattern: '\\S',
        expected: 'a non-empty string',
        description: 'The caller’s zone; same-zone endpoints are preferred.',
        ...envVar(
          'MESH_ZONE',
          'Zone of this process; endpoints in the same zone are preferred while enough of them are healthy.',
          { type: 'string' },
        ),
      }),
    ),
    localityMinHealthyPercent: percent(
      D.localityMinHealthyPercent,
      'Keep traffic local while this % of local endpoints is usable.',
      {
        ...envVar(
          'MESH_LB_LOCALITY_MIN_HEALTHY_PERCENT',
          'Keep traffic in the local zone while at least this percentage of its endpoints is usable.',
          { type: 'number 0..100 (percent)' },
        ),
      },
    ),
    panicThreshold: percent(
      D.panicThreshold,
      'Panic below this percentage of usable endpoints: balance over all of them (Envoy: 50; 0 disables panic mode).',
      {
        ...envVar(
          'MESH_LB_PANIC_THRESHOLD',
          'Below this percentage of usable endpoints, balance over all endpoints (panic mode).',
          {
            type: 'number 0..100 (percent)',
          },
        ),
      },
    ),
    waitForReady: Type.Optional(
      Type.Boolean({
        default: D.waitForReady,
        description:
          'When every endpoint is unreachable (`TRANSIENT_FAILURE`), a call waits, within its deadline, for one to reconnect instead of failing at once with `MESH_NO_HEALTHY_ENDPOINTS` (gRPC’s `waitForReady`); a call’s own `waitForReady` option overrides it.',
        ...envVar(
          'MESH_LB_WAIT_FOR_READY',
          'Wait, within the call’s deadline, for an unreachable service’s endpoints to reconnect instead of failing at once.',
          { type: 'boolean' },
        ),
      }),
    ),
    connectBackoff: Type.Optional(connectBackoffSchema),
    slowStart: Type.Optional(
      Fields({
        window: Type.Optional(
          Duration({
            min: 1,
            default: DEFAULT_SLOW_START.window,
            description:
              'Ramp-up window of a new endpoint. Slow start is off unless `slowStart` is set; this default applies then.',
            ...envVar(
              'MESH_LB_SLOW_START_WINDOW',
              'Ramp new endpoints up over this window (weighted policies).',
              {
                type: 'duration ≥ 1ms',
                defaultValue: '— (off)',
              },
            ),
          }),
        ),
        aggression: Type.Optional(
          Type.Number({
            minimum: 0.01,
            maximum: 100,
            default: DEFAULT_SLOW_START.aggression,
            description: 'Curve exponent; 1 is linear.',
          }),
        ),
        minWeightPercent: percent(
          DEFAULT_SLOW_START.minWeightPercent,
          'Lower bound of the ramp, percent of the full weight.',
        ),
      }),
    ),
  },
  foreignNames({
    simple: {
      use: "policy, in lower case ('round_robin', 'least_request', 'random')",
      from: "Istio's loadBalancer.simple",
    },
    consistentHash: {
      use: "policy: 'ring_hash' (or 'maglev') with hashOn",
      from: "Istio's loadBalancer.consistentHash",
    },
    lbPolicy: { use: 'policy', from: "Envoy's cluster lb_policy" },
  }),
);

/**
 * The `loadBalancer` section: an object, or `true` for the defaults. `false` is not allowed:
 * balancing cannot be turned off (pick `random` or `round_robin`).
 */
export const loadBalancerSection = Type.Union([Type.Literal(true), loadBalancerFields], {
  expected: 'an object or true (false is not allowed: balancing cannot be turned off)',
  'x-allow-true': true,
  description: 'Load balancing: the picker and its settings, locality, panic mode, slow start.',
});

/** The `loadBalancer` section as written. */
export type LoadBalancerOptions = Static<typeof loadBalancerSection>;

const isPrime = (n: number): boolean => {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
};

/** A validated `loadBalancer` section → its patch. */
export function loadBalancerPatch(doc: LoadBalancerOptions): LoadBalancerPatch {
  if (doc === true) return {};
  const { decayTime, defaultRtt, hashOn, slowStart, connectBackoff } = doc;
  const p: LoadBalancerPatch = omitKeys(doc, [
    'decayTime',
    'defaultRtt',
    'hashOn',
    'slowStart',
    'connectBackoff',
  ]);
  if (decayTime !== undefined) p.decayTime = parseDuration(decayTime, '');
  if (defaultRtt !== undefined) p.defaultRtt = parseDuration(defaultRtt, '');
  if (hashOn !== undefined)
    p.hashOn =
      typeof hashOn === 'object' && hashOn.header !== undefined
        ? { header: hashOn.header.toLowerCase() }
        : hashOn;
  if (slowStart !== undefined) {
    const { window, ...s } = slowStart;
    p.slowStart = window === undefined ? s : { ...s, window: parseDuration(window, '') };
  }
  if (connectBackoff !== undefined) p.connectBackoff = connectBackoffPatch(connectBackoff);
  return p;
}

/**
 * Rules across fields of one `loadBalancer` object (checked even when other fields are invalid,
 * so every problem is reported at once): `tableSize` is a prime; `minRingSize` ≤ `maxRingSize`;
 * `connectBackoff.initial` ≤ `connectBackoff.max`.
 */
export function loadBalancerRules(raw: unknown, path: string, issues: Issues): void {
  if (typeof raw !== 'object' || raw === null) return;
  const { tableSize, minRingSize, maxRingSize } = raw as Record<string, unknown>;
  if (Number.isInteger(tableSize) && (tableSize as number) >= 3 && !isPrime(tableSize as number))
    issues.add(`${path}.tableSize`, 'a prime number (e.g. 65537)', tableSize);
  if (typeof minRingSize === 'number' && typeof maxRingSize === 'number' && minRingSize > maxRingSize)
    issues.add(`${path}.minRingSize`, `at most maxRingSize (${maxRingSize})`, minRingSize);
  connectBackoffRules((raw as { connectBackoff?: unknown }).connectBackoff, `${path}.connectBackoff`, issues);
}

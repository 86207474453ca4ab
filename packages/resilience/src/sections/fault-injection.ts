import {
  Duration,
  Fields,
  foreignNames,
  type Issues,
  parseDuration,
  Section,
  type Static,
  Type,
} from '@proxyless/core';
import type { DeepPartial } from './util.js';

/** Resolved fault injection. */
export interface FaultInjectionConfig {
  readonly delay: { readonly percent: number; readonly durationMs: number } | undefined;
  readonly abort: { readonly percent: number; readonly status: number } | undefined;
  /**
   * When set, faults are only injected for requests carrying this header; its value may be
   * `delay=<duration>` and/or `abort=<status>` (comma-separated) to force a fault.
   */
  readonly header: string | undefined;
}

/** Fault-injection settings one layer sets. */
export type FaultInjectionPatch = DeepPartial<FaultInjectionConfig>;

/**
 * Built-in values of the fields of `delay` and `abort` that no layer sets: every request, answered
 * with 503. Applied once the layers are merged, so a layer naming one field keeps the others of the
 * layers below.
 */
export const DEFAULT_FAULT = Object.freeze({ percent: 100, status: 503 });

const percent = Type.Optional(
  Type.Number({
    minimum: 0,
    maximum: 100,
    default: DEFAULT_FAULT.percent,
    description: 'Share of requests affected, percent.',
  }),
);

/** The `faultInjection` section. `true` is not allowed: a fault must be spelled out. */
export const faultInjectionSection = Section(
  Fields({
    delay: Type.Optional(
      Fields(
        { percent, duration: Duration({ description: 'Added delay.' }) },
        {
          description: 'Delay a share of requests (Envoy `fault.delay`).',
          ...foreignNames({
            fixedDelay: { use: 'duration', from: "Istio's fault.delay.fixedDelay" },
            percentage: { use: 'percent (a number 0..100)', from: "Istio's fault.delay.percentage" },
          }),
        },
      ),
    ),
    abort: Type.Optional(
      Fields(
        {
          percent,
          status: Type.Optional(
            Type.Integer({
              // Envoy's `http_status` range: a final status (a 1xx is no answer to end a call with).
              minimum: 200,
              maximum: 599,
              default: DEFAULT_FAULT.status,
              description: 'Status answered (200..599, as Envoy).',
            }),
          ),
        },
        {
          description: 'Answer a share of requests locally with a status (Envoy `fault.abort`).',
          ...foreignNames({
            httpStatus: { use: 'status', from: "Istio's fault.abort.httpStatus" },
            percentage: { use: 'percent (a number 0..100)', from: "Istio's fault.abort.percentage" },
          }),
        },
      ),
    ),
    header: Type.Optional(
      Type.String({
        pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
        expected: 'an HTTP header name',
        description:
          'Inject only into requests carrying this header (`delay=250ms,abort=503` forces a fault).',
      }),
    ),
  }),
  { allowTrue: false, description: 'Fault injection (testing resilience). Off unless set.' },
);

/** The `faultInjection` section as written. */
export type FaultInjectionOptions = Static<typeof faultInjectionSection>;

/**
 * A validated `faultInjection` section → its patch: the fields it names, nothing else (the
 * built-in values of the others are applied after the layers are merged: {@link resolveFaultInjection}).
 */
export function faultInjectionPatch(doc: FaultInjectionOptions): FaultInjectionPatch | false {
  if (doc === false) return false;
  const p: FaultInjectionPatch = {};
  if (doc.delay) {
    const d: { percent?: number; durationMs?: number } = {};
    if (doc.delay.percent !== undefined) d.percent = doc.delay.percent;
    if (doc.delay.duration !== undefined) d.durationMs = parseDuration(doc.delay.duration, '');
    p.delay = d;
  }
  if (doc.abort) {
    const a: { percent?: number; status?: number } = {};
    if (doc.abort.percent !== undefined) a.percent = doc.abort.percent;
    if (doc.abort.status !== undefined) a.status = doc.abort.status;
    p.abort = a;
  }
  if (doc.header !== undefined) p.header = doc.header.toLowerCase();
  return p;
}

/** Resolved configs by the merged patch they came from (merges are shared across services). */
const resolved = new WeakMap<object, FaultInjectionConfig>();

/**
 * The merged `faultInjection` of every layer → the config in force: {@link DEFAULT_FAULT} for the
 * `percent` and `status` no layer set. A `delay` whose duration no layer set is an issue (a
 * hand-written patch can omit it; a document cannot).
 */
export function resolveFaultInjection(merged: FaultInjectionPatch, issues: Issues): FaultInjectionConfig {
  const { delay, abort } = merged;
  if (delay !== undefined && delay.durationMs === undefined)
    issues.add('faultInjection.delay.duration', 'a duration set in some layer', undefined);
  const cached = resolved.get(merged);
  if (cached !== undefined) return cached;
  const out: FaultInjectionConfig = Object.freeze({
    delay:
      delay === undefined
        ? undefined
        : Object.freeze({
            percent: delay.percent ?? DEFAULT_FAULT.percent,
            durationMs: delay.durationMs ?? 0,
          }),
    abort:
      abort === undefined
        ? undefined
        : Object.freeze({
            percent: abort.percent ?? DEFAULT_FAULT.percent,
            status: abort.status ?? DEFAULT_FAULT.status,
          }),
    header: merged.header,
  });
  resolved.set(merged, out);
  return out;
}

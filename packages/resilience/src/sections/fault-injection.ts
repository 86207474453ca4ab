import { Duration, Fields, parseDuration, Section, type Static, Type } from '@proxyless/core';
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

const percent = Type.Optional(
  Type.Number({
    minimum: 0,
    maximum: 100,
    default: 100,
    description: 'Share of requests affected, percent.',
  }),
);

/** The `faultInjection` section. `true` is not allowed: a fault must be spelled out. */
export const faultInjectionSection = Section(
  Fields({
    delay: Type.Optional(
      Fields(
        { percent, duration: Duration({ description: 'Added delay.' }) },
        { description: 'Delay a share of requests (Envoy `fault.delay`).' },
      ),
    ),
    abort: Type.Optional(
      Fields(
        {
          percent,
          status: Type.Optional(
            Type.Integer({ minimum: 100, maximum: 599, default: 503, description: 'Status answered.' }),
          ),
        },
        { description: 'Answer a share of requests locally with a status (Envoy `fault.abort`).' },
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

/** A validated `faultInjection` section → its patch. */
export function faultInjectionPatch(doc: FaultInjectionOptions): FaultInjectionPatch | false {
  if (doc === false) return false;
  const p: FaultInjectionPatch = {};
  if (doc.delay)
    p.delay = { percent: doc.delay.percent ?? 100, durationMs: parseDuration(doc.delay.duration, '') };
  if (doc.abort) p.abort = { percent: doc.abort.percent ?? 100, status: doc.abort.status ?? 503 };
  if (doc.header !== undefined) p.header = doc.header.toLowerCase();
  return p;
}

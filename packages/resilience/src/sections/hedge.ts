import { Duration, envVar, Fields, parseDuration, Section, type Static, Type } from '@proxyless/core';
import type { DeepPartial } from './util.js';

/** Resolved hedging policy. */
export interface HedgeConfig {
  /** Fixed delay before each hedge, ms (used when `percentile` is unset or there is no history yet). */
  readonly delayMs: number;
  /** Hedge after this latency percentile (1..99.9) of recent successful calls. */
  readonly percentile: number | undefined;
  /** Extra concurrent attempts at most. */
  readonly maxHedges: number;
}

/** Hedge settings one layer sets. */
export type HedgePatch = DeepPartial<HedgeConfig>;

/**
 * Built-in hedge defaults (hedging itself is off unless configured): one extra attempt after
 * 50 ms, a delay near a typical p95 of an in-datacentre call ("The Tail at Scale", Dean & Barroso).
 */
export const DEFAULT_HEDGE: HedgeConfig = Object.freeze({ delayMs: 50, percentile: undefined, maxHedges: 1 });

/** The `hedge` section. `true` turns hedging on with the defaults. */
export const hedgeSection = Section(
  Fields({
    delay: Type.Optional(
      Type.Union(
        [
          Duration(),
          Fields({
            percentile: Type.Number({
              minimum: 1,
              maximum: 99.9,
              description: 'Latency percentile of recent successful calls.',
            }),
          }),
        ],
        {
          default: DEFAULT_HEDGE.delayMs,
          expected: 'a duration, or { percentile: 1..99.9 }',
          description:
            'Send another attempt if no answer came after this long. `{ percentile: p }` uses the p-th percentile latency of the last 256 successful attempts (the fixed delay until 20 are known).',
          ...envVar(
            'MESH_HEDGE_DELAY',
            'Turns hedging on: send another attempt after this delay, or after the pNN latency (e.g. `p95`). `0` hedges at once (unlike `MESH_TIMEOUT=0`); `off` for none.',
            {
              type: 'duration | pNN | off',
              defaultValue: 'off',
              offTurnsSectionOff: true,
              decode: (raw) => {
                const t = raw.trim();
                const m = /^p(\d+(?:\.\d+)?)$/i.exec(t);
                if (m) return { percentile: Number(m[1]) };
                // Plain digits are milliseconds, as for every duration variable (`.5` included).
                return /^(\d+(\.\d+)?|\.\d+)$/.test(t) ? Number(t) : t;
              },
            },
          ),
        },
      ),
    ),
    maxHedges: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 5,
        default: DEFAULT_HEDGE.maxHedges,
        description: 'Extra concurrent attempts at most (1..5).',
      }),
    ),
  }),
  { allowTrue: true, description: 'Hedging: a second attempt when the first is slow. Off unless set.' },
);

/** The `hedge` section as written. */
export type HedgeOptions = Static<typeof hedgeSection>;

/** A validated `hedge` section → its patch. */
export function hedgePatch(doc: HedgeOptions): HedgePatch | false {
  if (doc === false) return false;
  if (doc === true) return {};
  const p: HedgePatch = {};
  if (doc.delay !== undefined) {
    if (typeof doc.delay === 'object') p.percentile = doc.delay.percentile;
    else {
      p.delayMs = parseDuration(doc.delay, '');
      p.percentile = undefined;
    }
  }
  if (doc.maxHedges !== undefined) p.maxHedges = doc.maxHedges;
  return p;
}

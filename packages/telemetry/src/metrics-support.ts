/**
 * What the mesh's metrics keep per service, the `source` label of a config version, and the one
 * warning a metric that cannot be recorded gives (never an error thrown into a call).
 */

import type { EndpointStates } from './endpoint-states.js';
import { DEFAULT_CONFIG_SOURCE } from './events.js';
import { type BoundedValues, OTHER } from './labels.js';

export interface ServiceState {
  readonly endpoints: BoundedValues;
  readonly reasons: BoundedValues;
  readonly errorTypes: BoundedValues;
  readonly states: EndpointStates;
  /** The `target` labels of the service's routing subsets whose breaker or panic series exist. */
  readonly targets: BoundedValues;
  staleSince: number | undefined;
  /**
   * The endpoints of the service's set now (undefined before a set is known): the union of what
   * its destinations (the service's own, its routing subsets) report for one version of the set.
   */
  live: Set<string> | undefined;
  /** The resolver version `live` is of. */
  liveVersion: string | undefined;
}

/** The `source` label of a config version: the mesh's few source names; anything long is `_OTHER`. */
export function sourceLabel(source: string | undefined): string {
  if (source === undefined || source === '') return DEFAULT_CONFIG_SOURCE;
  return source.length > 32 ? OTHER : source;
}

let warnedFailure = false;

/** A metric that could not be recorded: said once per process, never thrown into a call. */
export function metricsFailed(error: unknown): void {
  if (warnedFailure) return;
  warnedFailure = true;
  try {
    process.emitWarning(
      `proxyless: a metric could not be recorded (${error instanceof Error ? error.message : String(error)}); calls are not affected`,
      { code: 'PROXYLESS_METRICS_FAILED' },
    );
  } catch {
    // Nothing left to report to.
  }
}

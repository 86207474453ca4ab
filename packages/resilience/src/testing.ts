/**
 * Test helpers for resilience policies: virtual time, seeded randomness, a scripted upstream, and
 * {@link runPolicy}, which runs one call through a policy stack and returns an assertion-friendly
 * record of every attempt (endpoint, start time, outcome, why it was retried, why it stopped).
 */
import {
  type CallEvent,
  type CallResult,
  compose,
  type Filter,
  Issues,
  MeshError,
  type MeshRequest,
  type Next,
  noopLogger,
  type Random,
  type ReadonlyArrays,
  seededRandom,
} from '@proxyless/core';
import {
  type CallSettledListener,
  flushPromises,
  kCallSettled,
  type ScriptStep,
  scriptedUpstream,
  testContext,
  VirtualClock,
} from '@proxyless/core/testing';
import {
  isParsedPatch,
  isResolvedConfig,
  type ResilienceConfig,
  type ResilienceOptions,
  type ResiliencePatch,
  resiliencePatchOf,
  resolveResilienceConfig,
} from './config.js';
import { unknownPatchKeys } from './patch-shape.js';
import { checkRunPolicyArguments } from './run-policy-args.js';
import { callWork } from './testing-clock.js';

export { checkRunPolicyArguments };

import { createPolicyStack } from './stack.js';

export {
  flushPromises,
  recordingObserver,
  type ScriptedUpstream,
  type ScriptStep,
  scriptedUpstream,
  seededRandom,
  testContext,
  VirtualClock,
} from '@proxyless/core/testing';

/** One attempt as the destination saw it. */
export interface AttemptRecord {
  /** Attempt number (1 = first; retries and hedges count up). */
  readonly attempt: number;
  /**
   * Endpoint id the attempt was sent to (the one that answered, failed, timed out or was aborted),
   * when known: `scriptedUpstream` names it as soon as it takes the step.
   */
  endpoint: string | undefined;
  /** Clock time the attempt reached the destination. */
  readonly startedAt: number;
  /** Clock time it ended. */
  endedAt: number | undefined;
  /** A status, an error code (`MESH_CONNECT_FAILED`, `MESH_TIMEOUT`, `MESH_ABORTED`, …), or `pending`. */
  outcome: number | string;
  /** Why this attempt was followed by a retry (`gateway-error`, `connect-failure`, …), if it was. */
  retriedBecause: string | undefined;
  /** Backoff before the next attempt, ms, if retried. */
  backoffMs: number | undefined;
}

/** What one call through a policy stack did. */
export interface PolicyRecord {
  readonly attempts: AttemptRecord[];
  /** Every call event, in order. */
  readonly events: CallEvent[];
  /** The final status, when the call returned a response. */
  status: number | undefined;
  /** The final error, when the call failed. */
  error: MeshError | undefined;
  /** Why retrying stopped (`max_retries (gateway-error)`, `budget_exhausted (5xx)`, …), if it did. */
  stoppedBecause: string | undefined;
  /** Clock time the call settled. */
  endedAt: number | undefined;
}

/**
 * Wrap a terminal so every attempt is recorded. Use it when composing filters yourself; pass the
 * returned `observer` in the call context to also record the events, the retry reasons, and how
 * the call settled (`status`, `error`, `endedAt`, filled when the composed call settles).
 */
export function recordAttempts(terminal: Next): {
  terminal: Next;
  record: PolicyRecord;
  observer: { onEvent(event: CallEvent): void };
} {
  const record: PolicyRecord = {
    attempts: [],
    events: [],
    status: undefined,
    error: undefined,
    stoppedBecause: undefined,
    endedAt: undefined,
  };
  const byNumber = new Map<number, AttemptRecord>();
  const wrapped: Next = async (ctx) => {
    const a: AttemptRecord = {
      attempt: ctx.attempt,
      endpoint: undefined,
      startedAt: ctx.clock.now(),
      endedAt: undefined,
      outcome: 'pending',
      retriedBecause: undefined,
      backoffMs: undefined,
    };
    record.attempts.push(a);
    byNumber.set(ctx.attempt, a);
    try {
      const result = await terminal(ctx);
      // A 1xx is no answer: the attempt fails with MESH_INTERNAL (stage.ts), and is recorded so.
      a.outcome = result.status < 200 ? 'MESH_INTERNAL' : result.status;
      a.endpoint = (result.endpoint ?? ctx.endpoint)?.id;
      a.endedAt = ctx.clock.now();
      return result;
    } catch (error) {
      a.endedAt = ctx.clock.now();
      // The endpoint the attempt was sent to (the terminal sets it on the attempt's context when it
      // picks, as the mesh's pick stage does), so a timed-out or aborted attempt keeps it; else the
      // one the error names.
      a.endpoint = ctx.endpoint?.id;
      if (MeshError.is(error)) {
        a.outcome = error.code;
        if (a.endpoint === undefined && typeof error.details.endpoint === 'string')
          a.endpoint = error.details.endpoint;
      } else {
        a.outcome = 'error';
      }
      throw error;
    }
  };
  const observer: { onEvent(event: CallEvent): void } & CallSettledListener = {
    // The composed call (`withPolicies`, `compose`) reports here how it settled.
    [kCallSettled](ctx, outcome): void {
      record.endedAt = ctx.clock.now();
      if ('result' in outcome) {
        record.status = outcome.result.status;
        record.error = undefined;
      } else {
        record.status = undefined;
        record.error = callError(outcome.error, ctx.signal);
      }
    },
    onEvent(event: CallEvent): void {
      record.events.push(event);
      if (event.type === 'retry') {
        const a = byNumber.get(event.attempt);
        if (a) {
          a.retriedBecause = event.reason;
          a.backoffMs = event.delayMs;
        }
      } else if (event.type === 'give_up') {
        record.stoppedBecause = event.reason;
      }
    },
  };
  return { terminal: wrapped, record, observer };
}

/**
 * The error a call failed with, as the record holds it: a mesh error as it is. The caller's abort
 * reaches the call as its signal's reason (as in production), whatever that is; here it is
 * `MESH_ABORTED` with that reason as `cause`. Anything else is `MESH_INTERNAL` with it as `cause`.
 */
function callError(error: unknown, signal: AbortSignal | undefined): MeshError {
  if (MeshError.is(error)) return error;
  if (signal?.aborted === true && error === signal.reason)
    return new MeshError('MESH_ABORTED', 'the request was aborted by the caller', { cause: error });
  return new MeshError('MESH_INTERNAL', 'the call failed with a non-mesh error', { cause: error });
}

/** Options of {@link runPolicy}. */
export interface RunPolicyOptions {
  /** Request fields (method, body, headers, …); default `GET /`. */
  request?: Partial<MeshRequest>;
  /** Seed of the call's random source (jitter, fault injection); default 1. */
  seed?: number;
  random?: Random;
  /** The clock to run on; default a new `VirtualClock` at 0. */
  clock?: VirtualClock;
  service?: string;
  signal?: AbortSignal;
  /** Extra filters placed before (outside) the policy stack. */
  filters?: Filter[];
  /**
   * Upper bound on the call's own timers (delays, backoffs, deadlines) fired while waiting for it, a
   * guard against a runaway script; background timers (a breaker's reset timer) are not counted.
   * When it runs out before the call settles, `runPolicy` throws `MESH_INTERNAL` naming
   * `maxTimers` and its value. Default 10,000.
   */
  maxTimers?: number;
}

/**
 * What {@link runPolicy} takes: the policy keys of a service entry exactly as written in the config
 * document or `createMesh({ services })` (`{ timeout: '2s', retry: { backoff: { base: '25ms' } } }`),
 * validated as the mesh validates them (a misspelt key is an error, not a default); or a
 * `ResiliencePatch` from `parseResiliencePatch`, a `ResilienceConfig` from `resolveResilienceConfig`
 * (recognised as the object it returned, not by its keys), or a patch written by hand in that
 * shape with `timeoutMs` / `perTryTimeoutMs`, used as they are.
 *
 * `Others` types the keys of the entry other packages own; see {@link PolicyEntry}.
 */
export type PolicyInput<Others extends OtherEntryKeys = OtherEntryKeys> =
  | PolicyEntry<Others>
  | ResiliencePatch
  | ResilienceConfig;

/**
 * The keys of a service entry that other stages own (`endpoints`, the balancer's `loadBalancer`,
 * `outlierDetection`, `healthCheck`), which {@link runPolicy} ignores. Typed `unknown` here: their
 * types belong to `@proxyless/balancer` and `@proxyless/discovery`, which this package does not
 * depend on (packages of one layer never import each other).
 */
export type OtherEntryKeys = Readonly<
  Partial<Record<'endpoints' | 'loadBalancer' | 'outlierDetection' | 'healthCheck', unknown>>
>;

/**
 * The policy keys of a service entry, typed as the config document declares them (a misspelt key
 * fails to compile), plus the keys other stages own, which {@link runPolicy} ignores. A package
 * that knows their types narrows them with `Others` (`proxyless/testing` can pass the balancer's
 * `BalancerOptions`, so a misspelt `loadBalancer` field fails to compile there too).
 */
export type PolicyEntry<Others extends OtherEntryKeys = OtherEntryKeys> = ReadonlyArrays<ResilienceOptions> &
  Readonly<Others>;

/**
 * Keys of a service entry that other stages own (endpoints, the balancer): {@link runPolicy} has one
 * scripted upstream, so it ignores them; any other key that is not a resilience key is an error.
 */
const OTHER_ENTRY_KEYS: ReadonlySet<string> = new Set([
  'endpoints',
  'loadBalancer',
  'outlierDetection',
  'healthCheck',
]);

/**
 * A patch written by hand in the parsed shape: its timeouts are `timeoutMs` / `perTryTimeoutMs`,
 * keys the document shape never has.
 */
function isHandWrittenPatch(config: PolicyInput): boolean {
  return 'timeoutMs' in config || 'perTryTimeoutMs' in config;
}

/**
 * True when `config` is the config-document shape, validated by {@link runPolicy} (not a parsed
 * patch, a resolved config or a hand-written patch). For `proxyless/testing`, which validates the
 * keys this package does not own (the balancer's) before calling {@link runPolicy}.
 * @internal
 */
export function isPolicyDocument(config: PolicyInput): boolean {
  return !(isResolvedConfig(config) || isParsedPatch(config) || isHandWrittenPatch(config));
}

/**
 * The patch for `config`. A patch the parser made, a resolved config, or a hand-written patch with
 * `timeoutMs` / `perTryTimeoutMs` is used as it is; anything else is the document shape, validated
 * exactly as `createMesh` validates a service entry — unknown keys included, at any depth.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` naming each bad field and value.
 */
function toPatch(config: PolicyInput): ResiliencePatch | ResilienceConfig {
  if (isResolvedConfig(config) || isParsedPatch(config)) return config;
  if (isHandWrittenPatch(config)) {
    // Used as it is, so a misspelt key would silently be a default: name it instead.
    const issues = new Issues();
    unknownPatchKeys(config, issues);
    issues.throwIfAny('runPolicy: invalid hand-written patch');
    return config as ResiliencePatch;
  }
  const own: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) if (!OTHER_ENTRY_KEYS.has(k)) own[k] = v;
  const issues = new Issues();
  const patch = resiliencePatchOf(own, 'policy', issues);
  issues.throwIfAny('runPolicy: invalid policy');
  return patch;
}

/**
 * Run one call through the policy stack built from `config` (the policy keys of a service entry as
 * written in the config document, or a parsed patch/config), resolved over the defaults, against a
 * scripted upstream, on virtual time, and return what happened.
 *
 * @example
 * const rec = await runPolicy({ retry: { maxRetries: 2 } }, ['503', '503', 200]);
 * rec.attempts.map((a) => a.outcome); // [503, 503, 200]
 */
export async function runPolicy(
  config: PolicyInput,
  script: readonly ScriptStep[],
  options: RunPolicyOptions = {},
): Promise<PolicyRecord> {
  checkRunPolicyArguments(config, script, options);
  const clock = options.clock ?? new VirtualClock();
  const input = toPatch(config);
  const resolved = isResolvedConfig(input) ? input : resolveResilienceConfig(input);
  const service = options.service ?? 'test';
  const random = options.random ?? seededRandom(options.seed ?? 1);
  const work = callWork(clock);
  // The script is checked before the stack is built: a refused one leaves nothing on the clock.
  // A `'hang'` step waits for an abort only: its (very long) sleep is not work that settles the call.
  const upstream = scriptedUpstream(script, { hangClock: work.background });
  const stack = createPolicyStack(resolved, { service, clock: work.deps, random, logger: noopLogger });
  const { terminal, record, observer } = recordAttempts(upstream);
  let call: ReturnType<typeof compose>;
  try {
    call = compose([...(options.filters ?? []), ...stack.filters], terminal);
  } catch (error) {
    stack.close();
    throw error;
  }
  // The call's own signal (linked to the caller's), so a hang can be aborted before reporting it.
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  const ctx = testContext({
    clock: work.call,
    random,
    service,
    observer,
    signal: controller.signal,
    ...(options.request ? { request: options.request } : {}),
  });
  let settled = false;
  // The record's `status`, `error` and `endedAt` are filled by `recordAttempts`' observer as the
  // call settles (a caller's abort, the signal's reason, is `MESH_ABORTED` there).
  const p = call(ctx).then(
    (result: CallResult) => {
      result.body.resume();
    },
    () => undefined,
  );
  void p.finally(() => {
    settled = true;
  });
  // Move time to the call's next own timer (firing background ones on the way) until it settles;
  // when only background timers are left, nothing will ever settle it: a hang. Running out of
  // `maxTimers` with work still pending is not a hang: the call was still busy. While the caller
  // has timers of its own on the clock (an abort meant to land mid-call), time moves one timer at
  // a time instead, so each fires at its time and time stops where the call settles.
  const max = options.maxTimers ?? 10_000;
  for (let i = 0; i < max; i++) {
    await flushPromises();
    if (settled) break;
    const at = work.call.nextWorkAt();
    if (work.othersPending() > 0) {
      if (!(await clock.next())) break;
      continue;
    }
    if (at === undefined) break;
    await clock.advance(Math.max(0, at - clock.now()));
  }
  await flushPromises();
  options.signal?.removeEventListener('abort', onAbort);
  const hung = !settled;
  // Not settled with timers of its own still pending: the loop stopped at `maxTimers`.
  const outOfTimers = hung && (work.call.nextWorkAt() !== undefined || work.othersPending() > 0);
  if (hung) {
    // Abort the call so nothing of it is left on the clock (its sleeps, its deadline).
    controller.abort(new MeshError('MESH_ABORTED', 'runPolicy: the call did not settle; aborted'));
    await flushPromises();
  }
  stack.close();
  if (outOfTimers) {
    throw new MeshError(
      'MESH_INTERNAL',
      `runPolicy: the call's timer budget ran out (maxTimers: ${max}) before it settled; ` +
        'raise maxTimers if the script needs more delays, backoffs and deadlines',
      { details: { maxTimers: max } },
    );
  }
  if (hung) {
    throw new MeshError('MESH_INTERNAL', 'runPolicy: the call did not settle (a hang with no timeout?)');
  }
  await p;
  return record;
}

/**
 * Test helpers: virtual time, seeded randomness, a call context and a scripted upstream, so a
 * policy can be unit-tested with no sockets and no real time.
 */
import { Readable } from 'node:stream';
import type { Clock } from './clock.js';
import { createEndpoint, type Endpoint } from './endpoint.js';
import { MeshError } from './errors.js';
import type { CallContext, CallObserver, CallResult, MeshRequest, Next, ResponseHeaders } from './filter.js';
import { isIdempotentRequest, isReplayableBody, normalizeMethod } from './filter.js';
import { Issues } from './issues.js';
import { type Random, seededRandom } from './random.js';
import { emptyBody } from './stage.js';
import { VirtualClock } from './virtual-clock.js';

export { seededRandom } from './random.js';
export { type CallSettledListener, kCallSettled } from './stage.js';
export { flushPromises, VirtualClock, type VirtualClockOptions } from './virtual-clock.js';

export interface TestContextOptions extends Partial<Omit<CallContext, 'request'>> {
  request?: Partial<MeshRequest>;
}

/** A call context with test defaults: service `test`, `GET /`, a new `VirtualClock`, seed 1. */
export function testContext(options: TestContextOptions = {}): CallContext {
  // As the mesh reads a request: the method normalised as undici does, header names lower-cased,
  // and the same idempotency rule (method, `Idempotency-Key`, `x-mesh-idempotent`).
  const method = normalizeMethod(options.request?.method ?? 'GET');
  const body = options.request?.body ?? null;
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(options.request?.headers ?? {})) {
    if (v !== undefined) headers[k.toLowerCase()] = v as string | string[];
  }
  const idempotent = options.request?.idempotent ?? isIdempotentRequest(method, headers);
  const bodyReplayable = options.request?.bodyReplayable ?? isReplayableBody(body);
  const request: MeshRequest = {
    path: '/',
    origin: `http://${options.service ?? 'test'}`,
    body,
    replayable: idempotent && bodyReplayable,
    ...options.request,
    method,
    headers,
    idempotent,
    bodyReplayable,
  };
  return {
    service: 'test',
    attempt: 1,
    deadline: undefined,
    signal: undefined,
    clock: new VirtualClock(),
    random: seededRandom(1),
    excludeEndpoints: undefined,
    attributes: new Map(),
    observer: undefined,
    ...options,
    request,
  };
}

/**
 * One step of a scripted upstream: one attempt's answer. A bare number or numeric string is a
 * status code, a final one (200–599).
 */
export type ScriptStep =
  | number
  | `${number}`
  | 'connect-error'
  | 'reset'
  | 'hang'
  | {
      /** The final status, 200–599 (a 1xx is informational, never an answer); default 200. */
      status?: number;
      /** Time the answer takes, on the context's clock. Aborting the attempt's signal cuts it short. */
      delayMs?: number;
      /** Fail instead of answering. */
      error?: 'connect' | 'reset';
      headers?: ResponseHeaders;
      /** The response body: text (sent as UTF-8) or bytes (a `Buffer` is a `Uint8Array`); default empty. */
      body?: string | Uint8Array;
      /** Which endpoint answered (for records); default `upstream:80`. */
      endpoint?: string;
    };

/** What the scripted upstream saw of one attempt. */
export interface ScriptedCall {
  readonly attempt: number;
  readonly at: number;
  readonly method: string;
  readonly excluded: readonly string[];
  /** Set when the attempt's signal aborted before the scripted answer. */
  aborted: boolean;
}

export interface ScriptedUpstream extends Next {
  readonly calls: readonly ScriptedCall[];
  /** Steps not yet used. */
  readonly remaining: number;
}

/**
 * A terminal that answers from a script, step by step: `scriptedUpstream(['503', '503', 200])`.
 * `'hang'` waits until the attempt is aborted. When the script runs out the last step repeats.
 * Each step is one attempt's final answer, so its status is 200–599: a 1xx is informational, never
 * the answer to a request (undici hands it over before the final response), and is an error here.
 * The step's endpoint is set on the attempt's context (`ctx.endpoint`) as soon as the step is
 * taken, as the mesh's pick stage sets it before sending.
 */
export function scriptedUpstream(
  script: readonly ScriptStep[],
  options: {
    clock?: Clock;
    /**
     * The clock a `'hang'` step waits on (default: the one of `clock`). `runPolicy` gives one whose
     * timers are not the call's work: a hang waits for an abort only.
     */
    hangClock?: Clock;
  } = {},
): ScriptedUpstream {
  if (script.length === 0)
    throw new MeshError('MESH_CONFIG_INVALID', 'scriptedUpstream: the script is empty');
  checkScript(script);
  const calls: ScriptedCall[] = [];
  let index = 0;
  const fn = async (ctx: CallContext): Promise<CallResult> => {
    const clock = options.clock ?? ctx.clock;
    const raw = script[Math.min(index, script.length - 1)]!;
    index++;
    const step = normalize(raw);
    const call: ScriptedCall = {
      attempt: ctx.attempt,
      at: clock.now(),
      method: ctx.request.method,
      excluded: [...(ctx.excludeEndpoints ?? [])],
      aborted: false,
    };
    calls.push(call);
    const endpoint = createEndpoint({ id: step.endpoint ?? 'upstream:80', address: 'upstream', port: 80 });
    // The endpoint this attempt is sent to, known before it answers, as the mesh's pick stage sets
    // it: an attempt that times out or is aborted (a losing hedge) still names its endpoint.
    ctx.endpoint = endpoint;
    try {
      if (step.hang) {
        await (options.hangClock ?? clock).sleep(Number.MAX_SAFE_INTEGER / 4, ctx.signal);
      } else if (step.delayMs) {
        await clock.sleep(step.delayMs, ctx.signal);
      } else if (ctx.signal?.aborted) {
        await clock.sleep(0, ctx.signal);
      }
    } catch (error) {
      call.aborted = true;
      throw error;
    }
    // Shaped as the pick stage raises them from undici's errors (scriptedTransportError).
    if (step.error === 'connect') throw scriptedTransportError('connect', ctx, endpoint.id);
    if (step.error === 'reset') throw scriptedTransportError('reset', ctx, endpoint.id);
    // Header names as undici gives them (lower case), so `Retry-After` is read as `retry-after` is.
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(step.headers)) if (v !== undefined) headers[k.toLowerCase()] = v;
    return {
      status: step.status,
      headers,
      body: step.body.length === 0 ? emptyBody() : Readable.from([Buffer.from(step.body)]),
      endpoint,
    };
  };
  Object.defineProperty(fn, 'calls', { get: () => calls });
  Object.defineProperty(fn, 'remaining', { get: () => Math.max(0, script.length - index) });
  return fn as ScriptedUpstream;
}

interface NormalStep {
  status: number;
  delayMs: number;
  error: 'connect' | 'reset' | undefined;
  hang: boolean;
  headers: ResponseHeaders;
  body: string | Uint8Array;
  endpoint: string | undefined;
}

const STEP_KEYS = new Set(['status', 'delayMs', 'error', 'headers', 'body', 'endpoint']);

/**
 * A step's status is the attempt's final answer: 200–599. A 1xx is informational (undici delivers
 * it before the final response, never as one), so a step of 103 would leave the attempt with no
 * answer at all.
 */
const FINAL_STATUS = 'a final HTTP status from 200 to 599 (a 1xx is informational, never the answer)';

function isFinalStatus(status: unknown): boolean {
  return Number.isInteger(status) && (status as number) >= 200 && (status as number) <= 599;
}

/**
 * Every step one of the forms {@link ScriptStep} names: a misspelt step (`'conect-error'`,
 * `{ error: 'connect-error' }`, `{ stauts: 503 }`) is an error naming it, not a 200 in disguise;
 * so is a status that is no final answer (a 1xx, which would leave the attempt unanswered).
 */
function checkScript(script: readonly ScriptStep[]): void {
  const issues = new Issues();
  script.forEach((step: unknown, i) => {
    const field = `script[${i}]`;
    if (typeof step === 'number' || (typeof step === 'string' && /^\d+$/.test(step))) {
      if (!isFinalStatus(Number(step))) issues.add(field, FINAL_STATUS, step);
      return;
    }
    if (typeof step === 'string') {
      if (step !== 'connect-error' && step !== 'reset' && step !== 'hang')
        issues.add(field, "a status, 'connect-error', 'reset', 'hang' or a step object", step);
      return;
    }
    if (typeof step !== 'object' || step === null || Array.isArray(step)) {
      issues.add(field, "a status, 'connect-error', 'reset', 'hang' or a step object", step);
      return;
    }
    const o = step as Record<string, unknown>;
    for (const key of Object.keys(o)) {
      if (!STEP_KEYS.has(key))
        issues.add(`${field}.${key}`, `no such field; known: ${[...STEP_KEYS].join(', ')}`, o[key]);
    }
    if (o.error !== undefined && o.error !== 'connect' && o.error !== 'reset')
      issues.add(`${field}.error`, "'connect' or 'reset'", o.error);
    if (o.status !== undefined && !isFinalStatus(o.status))
      issues.add(`${field}.status`, FINAL_STATUS, o.status);
    // A finite delay: `Infinity` would have the clock run forever (use `'hang'` for no answer).
    if (
      o.delayMs !== undefined &&
      !(typeof o.delayMs === 'number' && Number.isFinite(o.delayMs) && o.delayMs >= 0)
    )
      issues.add(`${field}.delayMs`, "a finite number of milliseconds ≥ 0 ('hang' never answers)", o.delayMs);
    if (o.headers !== undefined && !isHeaderRecord(o.headers))
      issues.add(
        `${field}.headers`,
        'an object of header names to string values (or lists of them)',
        o.headers,
      );
    if (o.body !== undefined && typeof o.body !== 'string' && !(o.body instanceof Uint8Array))
      issues.add(`${field}.body`, 'a string, Buffer or Uint8Array', o.body);
    if (o.endpoint !== undefined && (typeof o.endpoint !== 'string' || o.endpoint === ''))
      issues.add(`${field}.endpoint`, 'an endpoint id, host:port', o.endpoint);
  });
  issues.throwIfAny('scriptedUpstream');
}

function isHeaderRecord(h: unknown): boolean {
  if (typeof h !== 'object' || h === null || Array.isArray(h)) return false;
  return Object.values(h).every(
    (v) =>
      v === undefined || typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string')),
  );
}

function normalize(step: ScriptStep): NormalStep {
  const base: NormalStep = {
    status: 200,
    delayMs: 0,
    error: undefined,
    hang: false,
    headers: {},
    body: '',
    endpoint: undefined,
  };
  if (typeof step === 'number') return { ...base, status: step };
  if (step === 'connect-error') return { ...base, error: 'connect' };
  if (step === 'reset') return { ...base, error: 'reset' };
  if (step === 'hang') return { ...base, hang: true };
  if (typeof step === 'string') return { ...base, status: Number(step) };
  return {
    ...base,
    status: step.status ?? 200,
    delayMs: step.delayMs ?? 0,
    error: step.error,
    headers: step.headers ?? {},
    body: step.body ?? '',
    endpoint: step.endpoint,
  };
}

/** An observer that keeps every call event, for assertions. */
export function recordingObserver(): CallObserver & { events: import('./filter.js').CallEvent[] } {
  const events: import('./filter.js').CallEvent[] = [];
  return { events, onEvent: (e) => events.push(e) };
}

/**
 * Endpoints `10.0.0.1:8080`, `10.0.0.2:8080`, … for picker tests (250 per `10.0.x` block, then
 * `10.0.1.1:8080`, …), weight 1 unless `init.weight` says otherwise.
 */
export function testEndpoints(
  n: number,
  init: {
    weight?: (i: number) => number;
    zone?: (i: number) => string;
    priority?: (i: number) => number;
  } = {},
): Endpoint[] {
  return Array.from({ length: n }, (_, i) =>
    createEndpoint({
      address: `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`,
      port: 8080,
      weight: init.weight?.(i) ?? 1,
      ...(init.zone ? { zone: init.zone(i) } : {}),
      ...(init.priority ? { priority: init.priority(i) } : {}),
    }),
  );
}

export type { Random };

/**
 * A scripted connect failure or reset, as the pick stage raises one from undici's error: the same
 * message form, the transport's code as `details.errorCode`, and an error with that code as
 * `cause`. A reset is reported before the response head (`phase: 'request'`).
 */
function scriptedTransportError(kind: 'connect' | 'reset', ctx: CallContext, endpoint: string): MeshError {
  const connect = kind === 'connect';
  const errorCode = connect ? 'ECONNREFUSED' : 'UND_ERR_SOCKET';
  const cause = Object.assign(
    new Error(connect ? `connect ECONNREFUSED ${endpoint} (scripted)` : 'other side closed (scripted)'),
    { code: errorCode },
  );
  return new MeshError(
    connect ? 'MESH_CONNECT_FAILED' : 'MESH_UPSTREAM_RESET',
    `${connect ? 'connect to' : 'request to'} ${endpoint} for "${ctx.service}" failed: ${cause.message}`,
    {
      cause,
      details: {
        service: ctx.service,
        endpoint,
        phase: connect ? 'connect' : 'request',
        bodySent: connect ? false : ctx.request.body !== null,
        errorCode,
      },
    },
  );
}

import { Issues } from '@proxyless/core';

const RUN_POLICY_OPTION_KEYS = [
  'request',
  'seed',
  'random',
  'clock',
  'service',
  'signal',
  'filters',
  'maxTimers',
] as const;

/**
 * `runPolicy`'s arguments as a caller from JavaScript may give them: a misspelt option, a seed
 * that is not an integer, a clock that is not a virtual one, a script that is not a list — each
 * named with its value, all at once, instead of a silent default or a `TypeError` from inside.
 *
 * @throws MeshError `MESH_CONFIG_INVALID`
 */
export function checkRunPolicyArguments(config: unknown, script: unknown, options: unknown): void {
  const issues = new Issues();
  if (config === null || typeof config !== 'object' || Array.isArray(config))
    issues.add('policy', 'an object (a service entry, or a resilience patch)', config);
  if (!Array.isArray(script)) issues.add('script', 'a list of steps', script);
  if (options !== undefined) {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      issues.add('options', 'an object', options);
    } else {
      const o = options as Record<string, unknown>;
      issues.unknownKeys(o, 'options', RUN_POLICY_OPTION_KEYS);
      const has = (k: string): boolean => o[k] !== undefined;
      const fn = (v: unknown, k: string): boolean =>
        v !== null && typeof v === 'object' && typeof (v as Record<string, unknown>)[k] === 'function';
      if (has('seed') && !Number.isSafeInteger(o.seed)) issues.add('options.seed', 'an integer', o.seed);
      if (has('maxTimers') && !(Number.isSafeInteger(o.maxTimers) && (o.maxTimers as number) >= 1))
        issues.add('options.maxTimers', 'an integer ≥ 1', o.maxTimers);
      if (has('clock') && !(fn(o.clock, 'advance') && fn(o.clock, 'now') && fn(o.clock, 'setTimer')))
        issues.add('options.clock', 'a VirtualClock', o.clock);
      if (has('random') && !fn(o.random, 'next'))
        issues.add('options.random', 'a random source ({ next(): number })', o.random);
      if (has('service') && (typeof o.service !== 'string' || o.service === ''))
        issues.add('options.service', 'a service name', o.service);
      if (
        has('signal') &&
        !(fn(o.signal, 'addEventListener') && typeof (o.signal as AbortSignal).aborted === 'boolean')
      )
        issues.add('options.signal', 'an AbortSignal', o.signal);
      if (has('filters') && !(Array.isArray(o.filters) && o.filters.every((f) => typeof f === 'function')))
        issues.add('options.filters', 'a list of filters (interceptors)', o.filters);
      if (has('request') && (o.request === null || typeof o.request !== 'object'))
        issues.add('options.request', 'an object of request fields', o.request);
      else if (has('request')) checkRequest(o.request as Record<string, unknown>, issues);
    }
  }
  issues.throwIfAny('runPolicy: invalid arguments');
}

/** The fields of a `MeshRequest` a test may set, and what each takes. */
const REQUEST_FIELDS: Readonly<Record<string, [expected: string, ok: (v: unknown) => boolean]>> = {
  method: ['a method name (a string)', (v) => typeof v === 'string' && v.length > 0],
  path: ['a path starting with "/"', (v) => typeof v === 'string' && v.startsWith('/')],
  origin: ['an origin (a string, e.g. "http://payments")', (v) => typeof v === 'string'],
  headers: ['an object of header values', (v) => v !== null && typeof v === 'object' && !Array.isArray(v)],
  body: ['a request body (null, a string, bytes or a stream)', () => true],
  idempotent: ['a boolean', (v) => typeof v === 'boolean'],
  bodyReplayable: ['a boolean', (v) => typeof v === 'boolean'],
  replayable: ['a boolean', (v) => typeof v === 'boolean'],
};

/** `options.request`: known fields only (a misspelt `methd` would run a GET), each of its type. */
function checkRequest(request: Record<string, unknown>, issues: Issues): void {
  issues.unknownKeys(request, 'options.request', Object.keys(REQUEST_FIELDS));
  for (const key of Object.keys(REQUEST_FIELDS)) {
    const value = request[key];
    if (value === undefined) continue;
    const [expected, ok] = REQUEST_FIELDS[key]!;
    if (!ok(value)) issues.add(`options.request.${key}`, expected, value);
  }
}

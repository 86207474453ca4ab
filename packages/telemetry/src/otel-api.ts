/**
 * `@opentelemetry/api`, loaded when it can matter.
 *
 * The API does nothing by itself: until an SDK registers a tracer provider, a context manager or
 * a propagator under the process-wide `globalThis[Symbol.for('opentelemetry.js.api.1')]` (the
 * API's internal/global-utils.ts), every span is a non-recording no-op and nothing is injected.
 * So the mesh reads that global (a property read) and loads the API, 44 modules, only once
 * something is registered there, or when code hands it a tracer provider or asks for a server
 * span. Copies of the API share that global by design, so the copy loaded here works with
 * whatever copy the application's SDK registered through.
 */
import { createRequire } from 'node:module';
import type * as OtelApi from '@opentelemetry/api';

/** The `@opentelemetry/api` module. */
export type OtelApiModule = typeof OtelApi;

/** The global the API keeps its registrations under (major version 1). */
const GLOBAL_KEY = Symbol.for('opentelemetry.js.api.1');

interface OtelGlobal {
  readonly trace?: unknown;
  readonly context?: unknown;
  readonly propagation?: unknown;
}

let api: OtelApiModule | undefined;
/** Set when the API could not be loaded (a bundle without it): calls go on untraced. */
let unavailable = false;

/** Whether an SDK registered a tracer provider, a context manager or a propagator. */
function registered(): boolean {
  const g = (globalThis as { [GLOBAL_KEY]?: OtelGlobal })[GLOBAL_KEY];
  return g !== undefined && (g.trace !== undefined || g.context !== undefined || g.propagation !== undefined);
}

/**
 * The API when it is loaded or something is registered that makes it matter; `undefined` while
 * everything it would do is a no-op. Cheap enough for every call.
 */
export function otelApi(): OtelApiModule | undefined {
  if (api !== undefined || unavailable || !registered()) return api;
  try {
    return loadOtelApi();
  } catch {
    // Telemetry must never break a call: without the API there are no spans, as before an SDK.
    unavailable = true;
    return undefined;
  }
}

/** Load the API now (a `require`, cached). */
export function loadOtelApi(): OtelApiModule {
  // CommonJS in both builds: one copy per process, the one `require('@opentelemetry/api')` gives.
  api ??= createRequire(import.meta.url)('@opentelemetry/api') as OtelApiModule;
  return api;
}

/**
 * Where a mesh's spans come from: the tracer provider it was given, or the global one, which is
 * looked up when the API loads (and, until a tracer provider is registered, at every call), so an
 * SDK registered after `createMesh` is picked up.
 */
export class TracerSource {
  readonly #provider: OtelApi.TracerProvider | undefined;
  readonly #scope: string;
  #tracer: OtelApi.Tracer | undefined;

  constructor(scope: string, provider?: OtelApi.TracerProvider) {
    this.#scope = scope;
    this.#provider = provider;
    if (provider !== undefined) loadOtelApi();
  }

  /** The tracer to use with `api` (from {@link otelApi}). */
  tracer(api: OtelApiModule): OtelApi.Tracer {
    if (this.#tracer !== undefined) return this.#tracer;
    if (this.#provider !== undefined) {
      this.#tracer = this.#provider.getTracer(this.#scope);
      return this.#tracer;
    }
    // Once a provider is registered the global one is fixed (the API's proxy, whose delegate is
    // the SDK's provider): keep its tracer. Before that, the API answers a no-op each time.
    const tracer = api.trace.getTracer(this.#scope);
    if ((globalThis as { [GLOBAL_KEY]?: OtelGlobal })[GLOBAL_KEY]?.trace !== undefined) this.#tracer = tracer;
    return tracer;
  }
}

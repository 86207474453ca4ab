/**
 * Telemetry overhead, in process (no sockets): CPU µs per request added by the call and attempt
 * interceptors around an instant upstream, against the same stack without them, alternating
 * rounds, medians.
 *
 * - metrics + no-op tracing: the default with no OpenTelemetry SDK registered (target ≤ 2 µs);
 * - metrics + SDK: a `BasicTracerProvider` with a `BatchSpanProcessor` over an exporter that drops
 *   the batches, and the W3C propagator injecting `traceparent` (target ≤ 10 µs). Export cost
 *   (serialisation, network) is the exporter's, on its own schedule, and is not counted.
 *
 * Standalone: `npx tsx --conditions=@proxyless/source test/bench/telemetry.ts [--quick]`.
 * In `pnpm bench` through `run()`.
 */

import { propagation } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import {
  type CallContext,
  composeInterceptors,
  createEndpoint,
  type DispatchFn,
  type Interceptor,
  isIdempotentMethod,
  kCall,
  type MeshHandler,
  type MeshRequest,
  seededRandom,
  systemClock,
} from '@proxyless/core';
import { createTelemetry } from '@proxyless/telemetry';
import { Registry } from 'prom-client';
import type { Dispatcher } from 'undici';
import { type BenchOptions, type BenchSection, median } from './harness.js';

/** One measured figure. */
export interface TelemetryBenchFigure {
  area: string;
  name: string;
  value: number;
  unit: string;
  target?: string;
}

const REQUEST: MeshRequest = Object.freeze({
  method: 'GET',
  path: '/charge',
  origin: 'http://payments',
  headers: {},
  body: null,
  idempotent: isIdempotentMethod('GET'),
  bodyReplayable: true,
  replayable: true,
});
const ENDPOINT = createEndpoint({ address: '10.0.0.1', port: 8080 });
const RANDOM = seededRandom(1);
const HEADERS = { 'x-request-id': 'bench' };
const CHUNK = Buffer.from('ok');
const controller = {
  abort() {},
  pause() {},
  resume() {},
  paused: false,
  aborted: false,
  reason: null,
} as unknown as Dispatcher.DispatchController;

/** An upstream that answers 200 with a two-byte body, synchronously. */
const instant: DispatchFn = (_opts, handler) => {
  handler.onRequestStart?.(controller, {});
  handler.onResponseStart?.(controller, 200, {}, 'OK');
  handler.onResponseData?.(controller, CHUNK);
  handler.onResponseEnd?.(controller, {});
  return true;
};

const pick: Interceptor = (dispatch) => (opts, handler) => {
  opts[kCall]!.endpoint = ENDPOINT;
  return dispatch(opts, handler);
};

const sink: MeshHandler = { onResponseEnd() {}, onResponseError() {} };

function context(): CallContext {
  return {
    service: 'payments',
    request: REQUEST,
    attempt: 1,
    deadline: undefined,
    signal: undefined,
    clock: systemClock,
    random: RANDOM,
    excludeEndpoints: undefined,
    attributes: new Map(),
    observer: undefined,
  };
}

async function round(dispatch: DispatchFn, n: number): Promise<number> {
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    dispatch({ method: 'GET', path: '/charge', headers: HEADERS, [kCall]: context() }, sink);
    // Let the batch span processor's timers run, as they would between real requests.
    if ((i & 255) === 255) await new Promise<void>((r) => setImmediate(r));
  }
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / n;
}

class DroppingExporter implements SpanExporter {
  exported = 0;
  export(spans: Parameters<SpanExporter['export']>[0], done: Parameters<SpanExporter['export']>[1]): void {
    this.exported += spans.length;
    done({ code: 0 });
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** Run the telemetry benchmarks and return every figure. */
export async function runTelemetryBench(opts: { quick: boolean }): Promise<TelemetryBenchFigure[]> {
  const n = opts.quick ? 20_000 : 200_000;
  const rounds = opts.quick ? 3 : 7;
  const bare = composeInterceptors([pick], instant);
  const noop = createTelemetry({ registry: new Registry() });
  const withNoop = composeInterceptors([noop.callInterceptor, noop.attemptInterceptor, pick], instant);
  const exporter = new DroppingExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] });
  const sdk = createTelemetry({ registry: new Registry(), tracerProvider: provider });
  const withSdk = composeInterceptors([sdk.callInterceptor, sdk.attemptInterceptor, pick], instant);

  const base: number[] = [];
  const noopCpu: number[] = [];
  const sdkCpu: number[] = [];
  await round(bare, n / 10);
  await round(withNoop, n / 10);
  for (let r = 0; r < rounds; r++) {
    base.push(await round(bare, n));
    noopCpu.push(await round(withNoop, n));
  }
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  try {
    await round(withSdk, n / 10);
    for (let r = 0; r < rounds; r++) {
      base.push(await round(bare, n));
      sdkCpu.push(await round(withSdk, n));
    }
    await provider.forceFlush();
  } finally {
    propagation.disable();
    await provider.shutdown();
  }
  const baseUs = median(base);
  return [
    {
      area: 'telemetry',
      name: 'baseline (pick stage only), instant upstream',
      value: baseUs,
      unit: 'µs/request',
    },
    {
      area: 'telemetry',
      name: 'added by metrics + no-op tracing (no SDK)',
      value: median(noopCpu) - baseUs,
      unit: 'µs/request',
      target: '≤ 2 µs',
    },
    {
      area: 'telemetry',
      name: 'added by metrics + SDK tracing (batch processor, traceparent injected)',
      value: median(sdkCpu) - baseUs,
      unit: 'µs/request',
      target: '≤ 10 µs',
    },
    { area: 'telemetry', name: 'spans handed to the exporter', value: exporter.exported, unit: 'spans' },
  ];
}

/** The `pnpm bench` harness entry: the figures as one table. */
export async function run(options: BenchOptions): Promise<BenchSection[]> {
  const figures = await runTelemetryBench(options);
  return [
    {
      title: 'Telemetry',
      description:
        'In process, no sockets: CPU per request of the call + attempt interceptors around an instant upstream, minus the same stack without them. Alternating rounds, medians. SDK: BasicTracerProvider + BatchSpanProcessor (exporter drops batches), W3C propagator.',
      columns: ['figure', 'value', 'unit', 'target'],
      rows: figures.map((f) => [f.name, f.value, f.unit, f.target ?? '']),
    },
  ];
}

// Standalone only: `run.ts` bundles this file into its own, where argv[1] is run.js.
if (/telemetry\.[jt]s$/.test(process.argv[1] ?? '')) {
  void runTelemetryBench({ quick: process.argv.includes('--quick') }).then((figures) => {
    for (const f of figures)
      process.stdout.write(`${f.name}: ${f.value.toFixed(3)} ${f.unit} ${f.target ?? ''}\n`);
  });
}

/**
 * `pnpm chaos` — the chaos suite of #11: ten faults injected into real processes on 127.0.0.1
 * while traffic runs through `mesh.fetch`. Prints a table and, when all ten ran, writes
 * docs/reliability.md. `pnpm chaos 1 4` runs scenarios 1 and 4 only (and writes nothing).
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { markdownTable, type ScenarioResult, textTable } from './report.js';
import { errors503, killNine, neverAnswers, resets, sigstop, slowBackend } from './scenarios-backends.js';
import { configCorrupted, dnsDown, etcdOutage, soak } from './scenarios-registry.js';

const SCENARIOS: Record<number, () => Promise<ScenarioResult>> = {
  1: killNine,
  2: sigstop,
  3: neverAnswers,
  4: slowBackend,
  5: errors503,
  6: resets,
  7: etcdOutage,
  8: configCorrupted,
  9: dnsDown,
  10: soak,
};

/**
 * Why a target is missed on the data plane as it stands, for the scenarios that miss one. Each
 * cause was checked by a run with that one thing changed, unless it says otherwise; the text is
 * shown only for a missed row.
 */
const KNOWN_CAUSES: Record<number, string> = {
  1: "The errors are attempts refused a retry by the concurrent-retry threshold (`circuitBreaker.maxRetries`, 3 on this data plane): when a backend dies under 64 callers, every attempt in flight on its connections fails at once, and so do the connects that raced the first refusal. With the threshold unbounded (Istio's choice, the one taken for the interceptor data plane) the same scenario had 0 errors at 0.997 attempts/request.",
  2: 'Most likely the cause of scenario 3: per-try timeouts arrive in a burst (every attempt in flight on the frozen backend expires together) and meet the concurrent-retry threshold. Not confirmed: the check run with the threshold unbounded was spoiled by machine load (healthy calls reached the per-try timeout, and the breaker opened for the whole destination).',
  3: 'A burst of per-try timeouts (every attempt in flight on the silent backend expires together) meets the concurrent-retry threshold of scenario 1. With the threshold unbounded the scenario had 0 errors.',
  5: 'The breaker opens on the error percentage of calls (50 % by default). With half of all attempts failing and retries within the 20 % budget, about 40–50 % of calls still fail, so the rate sits at the threshold and whether the breaker opens differs between runs. The amplification target holds either way.',
  6: "A reset after the response head reaches the caller as undici's `UND_ERR_SOCKET` from the body stream: this data plane maps errors to mesh codes only up to the head (the interceptor data plane reports the body's end and can map it). Before-head GET failures are the concurrent-retry threshold again: with it unbounded there were none.",
  7: 'When the departing backend closes, the attempts in flight on its connections and the connects that raced the first refusal need concurrent retries: the same threshold as scenario 1. With it unbounded the scenario had 0 errors.',
};

const out = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

async function main(): Promise<void> {
  const wanted = process.argv
    .slice(2)
    .map(Number)
    .filter((n) => SCENARIOS[n] !== undefined);
  const list = wanted.length > 0 ? wanted : Object.keys(SCENARIOS).map(Number);
  const started = performance.now();
  const loadBefore = loadavg()[0] ?? 0;
  const results: ScenarioResult[] = [];
  for (const n of list) {
    const t = performance.now();
    out(`scenario ${n}…`);
    try {
      const r = await (SCENARIOS[n] as () => Promise<ScenarioResult>)();
      results.push(r);
      out(`${textTable([r])}\n    (${((performance.now() - t) / 1000).toFixed(1)} s)`);
    } catch (error) {
      out(
        `scenario ${n} could not run: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
      process.exitCode = 1;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  out(
    `\n${textTable(results)}\n\n${results.filter((r) => r.met).length}/${results.length} targets met in ${seconds.toFixed(0)} s`,
  );
  if (wanted.length === 0 && results.length === list.length) {
    const path = fileURLToPath(new URL('../../docs/reliability.md', import.meta.url));
    writeFileSync(path, document(results, seconds, [loadBefore, loadavg()[0] ?? 0]));
    out(`wrote ${path}`);
  }
}

function causes(results: readonly ScenarioResult[]): string {
  const missed = results.filter((r) => !r.met);
  if (missed.length === 0) return '';
  const lines = missed.map(
    (r) => `- **${r.n}.** ${KNOWN_CAUSES[r.n] ?? 'No cause identified yet; see the notes in the table.'}`,
  );
  return `## Why targets were missed\n\n${lines.join('\n')}\n\n`;
}

function document(results: readonly ScenarioResult[], seconds: number, load: readonly number[]): string {
  const machine = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'CPU'}, Node ${process.version}`;
  return `# Reliability under faults

The mesh exists to hide failures. This page publishes what it hides and what it does not: ten
faults injected into real processes on 127.0.0.1 while traffic runs through \`mesh.fetch\` with
the default settings (a scenario that needs a setting names it). Generated by \`pnpm chaos\`
(test/chaos/run.ts); do not edit by hand. A missed target stays in the table, with its reason.

## Figures

Measured on ${machine}; the suite took ${seconds.toFixed(0)} s; the 1-minute load average was
${load.map((l) => l.toFixed(1)).join(' at the start and ')} at the end. Backends and the client share
the machine's cores, so absolute latencies say little; compare the healthy and fault columns of one row.

${markdownTable(results)}

- **requests**: client calls made (each scenario is bounded in count and time).
- **errors**: calls that did not end in a 2xx with its whole body read, by mesh error code.
- **attempts/request**: requests the backends received per client call (amplification). An
  attempt refused at connect never reaches a backend; the mesh's own count is in the notes
  where it differs. The count of a \`kill -9\`ed backend is its last report, just before the kill.
- **p50 / p99**: client-side latency of calls started before the fault (healthy) and during it.
- **recovery**: from the end of a transient fault (the start of a permanent one) to the end of
  the last 250 ms window with an error or a p99 above twice the healthy p99.

${causes(results)}## How each failure is handled

1. **A backend dies (\`kill -9\`).** Requests in flight on its connections fail with
   \`MESH_UPSTREAM_RESET\`; idempotent ones are retried on another endpoint. New connections are
   refused: the first refusal moves the endpoint to \`TRANSIENT_FAILURE\` (gRPC's subchannel
   model) and no later pick chooses it, whatever the policy and whether outlier detection is on.
   A background probe reconnects with gRPC's connection backoff (1 s, ×1.6, ±20 % jitter, 120 s
   cap); the endpoint returns to picking when a connection succeeds.
2. **A backend freezes (\`SIGSTOP\`).** Connections still open (the kernel accepts them), requests
   hang: the per-try timeout ends the attempt and the retry goes elsewhere; consecutive timeouts
   eject the endpoint (outlier detection) until it answers again.
3. **A server accepts and never answers.** As 2: per-try timeout, retry, ejection.
4. **A slow backend.** \`peak_ewma\` weighs each endpoint by its peak-sensitive latency × in-flight
   load, so the slow endpoint receives a small share while it stays slow.
5. **A burst of 503s.** 503 is retried (\`gateway-error\`) within the retry budget (20 % of
   requests, at least 10/s), so load on a failing destination grows by at most that much; the
   circuit breaker opens on the error rate and closes after a good trial.
6. **Connections reset.** A reset before the response head is retried for idempotent requests;
   a POST whose body was sent is never replayed and fails with \`MESH_UPSTREAM_RESET\`
   (\`details.bodySent: true\`). A reset after the head reaches the caller as an error reading the
   body: the mesh cannot replay a response it has already handed over.
7. **The registry (etcd) stops.** Discovery keeps the last known endpoint set and reports
   \`resolver_error\`; an endpoint that leaves meanwhile is refused at connect and skipped at once
   (1); the registry's change applies when it is back.
8. **The config file is corrupted.** The document is validated as a whole; a rejected version
   changes nothing (\`config_rejected\` event) and the last good config stays until a valid one
   arrives.
9. **The DNS server stops.** The DNS resolver keeps the last answer past its TTL and reports
   \`resolver_error\` until the server answers again.
10. **Sustained load.** No per-request state outlives its request: heap and handle counts are
    measured after a forced GC at the end of a 10 s warm-up and at the end.

## Connectivity state and \`waitForReady\`

Per endpoint, \`mesh.stats(service).endpoints[i].connectivity\` shows \`IDLE\`, \`CONNECTING\`,
\`READY\` or \`TRANSIENT_FAILURE\` (with \`connectFailures\` and \`reconnectInMs\`); each change is
a \`balancer\` event of type \`connectivity\` with \`from\`, \`to\` and the error code. When every
endpoint of a service is in \`TRANSIENT_FAILURE\`, a call fails at once with
\`MESH_NO_HEALTHY_ENDPOINTS\` and nothing is sent — unless the service (or the call) sets
\`waitForReady\`, in which case the call waits, within its deadline, for an endpoint to reconnect.
`;
}

main().catch((error: unknown) => {
  out(`chaos suite failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
});

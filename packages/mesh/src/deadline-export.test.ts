import http from 'node:http';
import { type AddressInfo, Socket } from 'node:net';
import { resilienceEnvVars as fromResilience } from '@proxyless/resilience';
import { afterEach, describe, expect, it } from 'vitest';
import * as proxyless from './index.js';
import {
  allEnvVars,
  createMesh,
  DEADLINE_HEADER,
  deadlineFromHeaders,
  type Mesh,
  remainingIncomingDeadline,
  resilienceEnvVars,
  runWithIncomingDeadline,
  startServerSpan,
  withServerSpan,
} from './index.js';
import { VirtualClock } from './testing.js';

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

describe('deadline propagation from the one package an application installs', () => {
  it('proxyless exports runWithIncomingDeadline: calls inside it carry what the caller has left', async () => {
    const seen: (string | undefined)[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req.headers[DEADLINE_HEADER] as string | undefined);
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as AddressInfo;
    const mesh: Mesh = createMesh({ env: {}, services: { api: { endpoints: `127.0.0.1:${port}` } } });
    closers.push(() => mesh.close());
    await runWithIncomingDeadline({ [DEADLINE_HEADER]: '5000' }, async () => {
      await (await mesh.request('http://api/')).body.text();
    });
    await (await mesh.request('http://api/')).body.text();
    expect(seen).toHaveLength(2);
    const left = Number(seen[0]);
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(5000);
    // Outside the handler there is no deadline to propagate (no timeout is set by default).
    expect(seen[1]).toBeUndefined();
  });

  it('proxyless exports deadlineFromHeaders, remainingIncomingDeadline and resilienceEnvVars (docs/policies.md)', async () => {
    const clock = new VirtualClock();
    expect(deadlineFromHeaders({ [DEADLINE_HEADER]: '250' }, clock)).toBe(clock.now() + 250);
    expect(deadlineFromHeaders({ [DEADLINE_HEADER]: 'soon' }, clock)).toBeUndefined();
    expect(remainingIncomingDeadline()).toBeUndefined();
    const left = await runWithIncomingDeadline({ [DEADLINE_HEADER]: '5000' }, async () =>
      remainingIncomingDeadline(),
    );
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(5000);
    expect(resilienceEnvVars).toBe(fromResilience);
    const all = new Set(allEnvVars.map((v) => v.name));
    for (const v of resilienceEnvVars) expect(all, v.name).toContain(v.name);
  });

  it('proxyless exports the SERVER span helpers of docs/observability.md', () => {
    for (const name of ['startServerSpan', 'withServerSpan', 'extractServerContext'])
      expect(proxyless, name).toHaveProperty(name, expect.any(Function));
    // With no OpenTelemetry SDK registered the span is a no-op, and the handler runs in its context.
    const req = Object.assign(new http.IncomingMessage(new Socket()), { method: 'GET', url: '/x' });
    expect(withServerSpan(startServerSpan(req), () => 42)).toBe(42);
  });
});

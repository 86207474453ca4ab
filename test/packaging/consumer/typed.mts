// TypeScript consumer, checked with module node16 and with moduleResolution bundler: the README's
// calls must type-check against the published types, then run.
import { createMesh, type Mesh, MeshError } from 'proxyless';
import { type PolicyRecord, runPolicy, VirtualClock } from 'proxyless/testing';
import { request } from 'undici';

const mesh: Mesh = createMesh();
const res: Response = await mesh.fetch('http://echo/ts-fetch', { method: 'POST', body: '{}' });
const fetched = await res.text();
const { statusCode, body } = await mesh.request('http://echo/ts-request');
const requested = await body.text();
const u = await request('http://echo/ts-undici', { dispatcher: mesh.dispatcher });
const viaUndici = await u.body.text();
await mesh.close();
const rec: PolicyRecord = await runPolicy({ retry: { maxRetries: 1 } }, ['503', 200]);
const clock = new VirtualClock();
const failed: unknown = rec.error;
const out = {
  fetch: { status: res.status, text: fetched },
  request: { status: statusCode, text: requested },
  undici: { status: u.statusCode, text: viaUndici },
  runPolicy: rec.attempts.map((a) => a.outcome),
  isMeshError: MeshError.is(failed),
  now: clock.now(),
};
process.stdout.write(JSON.stringify(out));

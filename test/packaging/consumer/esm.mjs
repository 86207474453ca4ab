// ESM consumer: a real call through the mesh (fetch, request, undici + mesh.dispatcher), the
// testing entry, and the etcd registry selected without etcd3 installed.
import { createEtcdResolver } from '@proxyless/discovery';
import { createMesh, MeshError } from 'proxyless';
import { runPolicy, scriptedUpstream } from 'proxyless/testing';
import { request } from 'undici';

const out = {};
const mesh = createMesh();
try {
  const res = await mesh.fetch('http://echo/esm-fetch');
  out.fetch = { status: res.status, text: await res.text() };
  const r = await mesh.request('http://echo/esm-request');
  out.request = { status: r.statusCode, text: await r.body.text() };
  const u = await request('http://echo/esm-undici', { dispatcher: mesh.dispatcher });
  out.undici = { status: u.statusCode, text: await u.body.text() };
} finally {
  await mesh.close();
}
const rec = await runPolicy({ retry: { maxRetries: 2 } }, ['503', '503', 200]);
out.runPolicy = rec.attempts.map((a) => a.outcome);
try {
  scriptedUpstream([]);
} catch (error) {
  out.testingErrorIsMeshError = error instanceof MeshError && MeshError.is(error, 'MESH_CONFIG_INVALID');
}
const etcd = createEtcdResolver();
out.etcd = await new Promise((resolve) => {
  const w = etcd.watch('payments', (update) => {
    if (update.kind === 'endpoints') return;
    w.dispose();
    resolve({ code: update.error.code, message: update.error.message });
  });
});
await etcd.close();
process.stdout.write(JSON.stringify(out));

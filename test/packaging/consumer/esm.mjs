// ESM consumer: a real call through the mesh (fetch, request, undici + mesh.dispatcher), the
// testing entry, and the etcd registry selected without etcd3 installed.
import { createEtcdResolver } from '@proxyless/discovery';
import { runWithIncomingDeadline } from '@proxyless/resilience';
import { createMesh, MeshError, remainingIncomingDeadline } from 'proxyless';
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
// etcd selected without etcd3 installed: a clear error when the resolver or the mesh is created.
try {
  await createEtcdResolver().close();
  out.etcd = 'created';
} catch (error) {
  out.etcd = { code: error.code, message: error.message };
  // Thrown by @proxyless/discovery's own copy of MeshError: proxyless's class still knows it.
  out.etcdErrorIsMeshError = error instanceof MeshError;
}
process.env.MESH_REGISTRY = 'etcd';
try {
  await createMesh().close();
  out.meshEtcd = 'created';
} catch (error) {
  out.meshEtcd = { code: error.code, message: error.message };
}
delete process.env.MESH_REGISTRY;
// proxyless runs from its own files: none of the workspace packages it bundles is loaded for it
// (this script's own import of @proxyless/discovery aside).
out.meshErrorFromCore = (await import('@proxyless/core')).MeshError === MeshError;
// What console.error and stack traces print: the class's own name, not a bundler's rename.
out.errorClassName = new MeshError('MESH_INTERNAL', 'x').constructor.name;
// The same for every exported function and class of both entries.
out.renamedExports = [];
for (const entry of ['proxyless', 'proxyless/testing'])
  for (const [key, value] of Object.entries(await import(entry)))
    if (typeof value === 'function' && value.name !== key)
      out.renamedExports.push(`${entry}: ${key} is named ${value.name}`);
// A deadline set with @proxyless/resilience's copy is the one proxyless's copy reads (one context).
out.deadlineAcrossCopies = runWithIncomingDeadline({ 'x-mesh-deadline-ms': '500' }, () =>
  remainingIncomingDeadline(),
);
process.stdout.write(JSON.stringify(out));

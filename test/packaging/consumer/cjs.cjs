// CommonJS consumer (Jest's default): the same calls, and one MeshError class across the public
// and the testing entries.
const { createMesh, MeshError } = require('proxyless');
const { runPolicy, scriptedUpstream } = require('proxyless/testing');
const { request } = require('undici');

async function main() {
  const out = {};
  const mesh = createMesh();
  try {
    const res = await mesh.fetch('http://echo/cjs-fetch');
    out.fetch = { status: res.status, text: await res.text() };
    const r = await mesh.request('http://echo/cjs-request');
    out.request = { status: r.statusCode, text: await r.body.text() };
    const u = await request('http://echo/cjs-undici', { dispatcher: mesh.dispatcher });
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
  const reset = await runPolicy({ retry: false }, ['reset']);
  out.runPolicyErrorIsMeshError = reset.error instanceof MeshError;
  process.env.MESH_REGISTRY = 'etcd';
  try {
    await createMesh().close();
    out.meshEtcd = 'created';
  } catch (error) {
    out.meshEtcd = { code: error.code, message: error.message };
  }
  delete process.env.MESH_REGISTRY;
  out.modulesLoaded = Object.keys(require.cache).length;
  process.stdout.write(JSON.stringify(out));
}
main().catch((error) => {
  process.stderr.write(String(error?.stack));
  process.exitCode = 1;
});

// TypeScript consumer compiled to CommonJS (module node16, a .cts file).
import { createMesh, MeshError } from 'proxyless';
import { runPolicy } from 'proxyless/testing';
import { request } from 'undici';

async function main(): Promise<void> {
  const mesh = createMesh();
  const res = await mesh.fetch('http://echo/cts-fetch');
  const u = await request('http://echo/cts-undici', { dispatcher: mesh.dispatcher });
  const out = {
    fetch: { status: res.status, text: await res.text() },
    undici: { status: u.statusCode, text: await u.body.text() },
    runPolicy: (await runPolicy({ retry: false }, ['reset'])).error instanceof MeshError,
  };
  await mesh.close();
  process.stdout.write(JSON.stringify(out));
}
void main();

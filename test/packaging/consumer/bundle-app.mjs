// The smallest app: bundled with esbuild, then started from a folder with no node_modules.
// `mesh.fetch` loads undici's fetch at run time (a require a bundler cannot follow): with undici
// not next to the bundle, it must say so, as README's "Bundling" note tells to keep it external.
import { createMesh } from 'proxyless';

const mesh = createMesh();
mesh.request('http://echo/bundle').then(
  async (r) => {
    const out = { status: r.statusCode, text: await r.body.text() };
    const fetched = await mesh.fetch('http://echo/bundle-fetch').then(
      () => ({ ok: true }),
      (e) => ({ code: e?.code, external: String(e?.message).includes('--external:undici') }),
    );
    process.stdout.write(JSON.stringify({ ...out, fetch: fetched }));
    await mesh.close();
  },
  (error) => {
    process.stderr.write(String(error?.stack ?? error));
    process.exitCode = 1;
  },
);

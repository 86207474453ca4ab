// The smallest app: bundled with esbuild, then started from a folder with no node_modules.
import { createMesh } from 'proxyless';

const mesh = createMesh();
mesh.request('http://echo/bundle').then(
  async (r) => {
    process.stdout.write(JSON.stringify({ status: r.statusCode, text: await r.body.text() }));
    await mesh.close();
  },
  (error) => {
    process.stderr.write(String(error?.stack ?? error));
    process.exitCode = 1;
  },
);

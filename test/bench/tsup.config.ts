import { defineConfig } from 'tsup';

/**
 * `pnpm bench` measures the packages as they are published: it builds them (`turbo run build`),
 * bundles only the benchmark files here, and runs them with plain Node, so `proxyless` and
 * `@proxyless/*` resolve to their `dist/` builds. Running the sources through tsx instead would
 * add a name-keeping helper call per closure — microseconds per request charged to the mesh but
 * not to undici.
 */
export default defineConfig({
  entry: { run: 'test/bench/run.ts' },
  outDir: '.tmp/bench',
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  splitting: false,
  dts: false,
  sourcemap: false,
  clean: true,
  // Every package import (bare specifier) stays an import, resolved from the workspace at run time.
  external: [/^[^./]/],
  onSuccess: 'cp test/bench/backend.mjs .tmp/bench/backend.mjs',
});

import { copyFileSync } from 'node:fs';
import { defineConfig } from 'tsup';
import { asciiOutput } from '../../scripts/tsup-ascii.js';

/**
 * ESM and CJS, each split into shared chunks so that every entry of one format (`index`,
 * `testing`) uses the same classes: an error thrown by a testing helper is `instanceof MeshError`
 * of the public entry in CommonJS too. No source maps in the package: the output is unminified,
 * readable JavaScript, and maps of it would double the tarball for little gain.
 */
export default defineConfig({
  entry: ['src/index.ts', 'src/testing.ts'],
  format: ['esm', 'cjs'],
  splitting: true,
  dts: true,
  clean: true,
  sourcemap: false,
  target: 'node20',
  plugins: [asciiOutput()],
  // opossum is required by src/opossum-part.cjs at the first breaker (why: see there). It stays a
  // file of its own next to the chunks, in both formats: bundled into the ESM output, its
  // `require` call would become esbuild's throwing `__require` shim.
  esbuildPlugins: [
    {
      name: 'opossum-part-external',
      setup(build) {
        build.onResolve({ filter: /^\.\/opossum-part\.cjs$/ }, (args) => ({
          path: args.path,
          external: true,
        }));
      },
    },
  ],
  onSuccess: async () => {
    copyFileSync('src/opossum-part.cjs', 'dist/opossum-part.cjs');
  },
});

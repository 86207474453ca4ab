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
  // TypeBox ships ~270 ESM files; bundled here, importing the mesh loads one file instead of all of
  // them (start-up cost, test/bench/config.ts). Its schemas interoperate across copies (Symbol.for
  // keys); only core compiles and registers custom kinds.
  noExternal: ['@sinclair/typebox'],
  // `import.meta.url` in the CommonJS build (undici.ts loads undici's index with it).
  shims: true,
  // undici's files are required by src/undici-parts.cjs (why: see there). It stays a file of its
  // own next to the chunks, in both formats: bundled into the ESM output, its `require` calls
  // would become esbuild's throwing `__require` shim.
  esbuildPlugins: [
    {
      name: 'undici-parts-external',
      setup(build) {
        build.onResolve({ filter: /^\.\/undici-parts\.cjs$/ }, (args) => ({
          path: args.path,
          external: true,
        }));
      },
    },
  ],
  onSuccess: async () => {
    copyFileSync('src/undici-parts.cjs', 'dist/undici-parts.cjs');
  },
});

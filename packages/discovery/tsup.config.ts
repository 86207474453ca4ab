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
  // import.meta.url in the CJS build (the etcd3 presence check resolves from this package).
  shims: true,
  target: 'node20',
  plugins: [asciiOutput()],
});

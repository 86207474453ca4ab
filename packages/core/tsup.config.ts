import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/testing.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  // TypeBox ships ~270 ESM files; bundled here, importing the mesh loads one file instead of all of
  // them (start-up cost, test/bench/config.ts). Its schemas interoperate across copies (Symbol.for
  // keys); only core compiles and registers custom kinds.
  noExternal: ['@sinclair/typebox'],
});

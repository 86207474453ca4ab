// prepack guard of every package: packing without a build would publish a package with no code.
import { existsSync } from 'node:fs';

if (!existsSync('dist/index.js') || !existsSync('dist/index.cjs')) {
  process.stderr.write(`${process.cwd()}: dist/ is missing or incomplete; run pnpm build first\n`);
  process.exit(1);
}

import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['@proxyless/source'] },
  ssr: { resolve: { conditions: ['@proxyless/source'] } },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});

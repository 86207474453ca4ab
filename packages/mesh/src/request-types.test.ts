import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { createMesh } from './mesh.js';

// Type-level checks (`pnpm typecheck`): `mesh.request` is typed as undici's `request()` is, so its
// result goes wherever undici's `ResponseData` does, and `opaque` keeps its type.
async function typed(): Promise<void> {
  const mesh = createMesh({ env: {} });
  const plain: Dispatcher.ResponseData = await mesh.request('http://api/');
  const withOpaque = await mesh.request('http://api/', { opaque: { id: 7 } });
  const id: number = withOpaque.opaque.id;
  // @ts-expect-error the opaque value is typed: no property `name`
  const missing = withOpaque.opaque.name;
  const endpoint: string | undefined = withOpaque.endpoint;
  void [plain, id, missing, endpoint];
}

describe('mesh.request types', () => {
  it('compiles as undici request() (checked by pnpm typecheck)', () => {
    expect(typeof typed).toBe('function');
  });
});

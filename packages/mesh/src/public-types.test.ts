// The types the docs name and the public signatures use can be imported, and the documented error
// details are typed (pnpm typecheck covers test files) (probe31 types 2).
import type {
  ConfigDocument,
  Mesh,
  MeshErrorDetails,
  MeshRequest,
  ResilienceConfig,
  ResiliencePatch,
} from 'proxyless';
import { checkConfigDocument, MeshError } from 'proxyless';
import type {
  CallContext,
  MeshRequest as TestingMeshRequest,
  ResilienceConfig as TestingResilienceConfig,
  ResiliencePatch as TestingResiliencePatch,
} from 'proxyless/testing';
import { parseResiliencePatch, resolveResilienceConfig } from 'proxyless/testing';
import { describe, expect, expectTypeOf, it } from 'vitest';

describe('public types', () => {
  it('names the types of mesh.config(), of the patch functions and of ctx.request', () => {
    expectTypeOf<ReturnType<Mesh['config']>['resilience']>().toEqualTypeOf<ResilienceConfig>();
    expectTypeOf<TestingResilienceConfig>().toEqualTypeOf<ResilienceConfig>();
    expectTypeOf<TestingResiliencePatch>().toEqualTypeOf<ResiliencePatch>();
    expectTypeOf(resolveResilienceConfig).returns.toEqualTypeOf<ResilienceConfig>();
    expectTypeOf(parseResiliencePatch).returns.toExtend<ResiliencePatch | undefined>();
    expectTypeOf<CallContext['request']>().toEqualTypeOf<MeshRequest>();
    expectTypeOf<TestingMeshRequest>().toEqualTypeOf<MeshRequest>();
    const config: ResilienceConfig = resolveResilienceConfig({ timeoutMs: 2000 });
    expect(config.timeoutMs).toBe(2000);
  });

  it('types the documented details of MESH_CIRCUIT_OPEN, MESH_TIMEOUT and the limits', () => {
    const open = new MeshError('MESH_CIRCUIT_OPEN', 'open', {
      details: { service: 'api', state: 'open', reason: 'open', retryAfterMs: 250, openedAt: 10 },
    });
    const retryAfter: number | undefined = open.details.retryAfterMs;
    expect(retryAfter).toBe(250);
    expectTypeOf(open.details.state).toEqualTypeOf<'closed' | 'open' | 'half-open' | undefined>();
    expectTypeOf(open.details.openedAt).toEqualTypeOf<number | undefined>();
    expectTypeOf<MeshErrorDetails['limit']>().toEqualTypeOf<
      'overall' | 'perTry' | 'propagated' | 'headers' | 'body' | 'idle' | undefined
    >();
    // @ts-expect-error: not one of the limits a MESH_TIMEOUT names
    void new MeshError('MESH_TIMEOUT', 'x', { details: { limit: 'total' } });
  });

  it('a document declared as const is a ConfigDocument (readonly arrays), as createConfigSource takes it', () => {
    const doc = {
      defaults: { timeout: '1s' },
      services: {
        payments: {
          endpoints: [{ address: '10.0.0.1', port: 8080, tags: ['v2'] }],
          retry: { retryOn: ['5xx', 'retriable-status-codes'], retriableStatusCodes: [429] },
        },
      },
      configEntries: [{ Kind: 'service-defaults', Name: 'payments', Protocol: 'http' }],
    } as const;
    const typed: ConfigDocument = doc;
    expect(checkConfigDocument(typed)).toEqual([]);
    // @ts-expect-error a misspelt key still fails to compile
    const misspelt: ConfigDocument = { services: { p: { retry: { maxRetires: 2 } } } };
    expect(misspelt).toBeDefined();
  });
});

import { describe, expect, it } from 'vitest';
import { createMesh, type MeshOptions, type PolicyOptions, type ServiceOptions } from '../mesh.js';

// Type-level checks: `pnpm typecheck` fails if a misspelt key or a wrong type compiles (#10).
const good: ServiceOptions = {
  endpoints: '10.0.0.1:8080',
  timeout: '2s',
  retry: { maxRetries: 2, retryOn: ['connect-failure', '5xx'], backoff: { base: '25ms' } },
  hedge: { delay: { percentile: 95 } },
  circuitBreaker: false,
  loadBalancer: { policy: 'peak_ewma', hashOn: { header: 'x-user' } },
  healthCheck: { path: '/healthz' },
};

// @ts-expect-error a misspelt field inside a section does not compile
const typoField: ServiceOptions = { retry: { maxRetires: 2 } };
// @ts-expect-error a misspelt section does not compile
const typoSection: ServiceOptions = { retyr: { maxRetries: 2 } };
// @ts-expect-error an unknown balancing policy does not compile
const badPolicy: ServiceOptions = { loadBalancer: { policy: 'round_robbin' } };
// @ts-expect-error rateLimit has no defaults, so `true` does not compile
const rateTrue: PolicyOptions = { rateLimit: true };
// @ts-expect-error a string where a number is expected does not compile
const badType: PolicyOptions = { retry: { maxRetries: 'three' } };
// @ts-expect-error loadBalancer cannot be turned off
const lbOff: PolicyOptions = { loadBalancer: false };
// Readonly arrays compile wherever arrays do (probe2 types: TS2322 for an `as const` retryOn).
const RETRY_ON = ['connect-failure', '5xx', 'retriable-status-codes'] as const;
const STATUSES: readonly number[] = [429, 503];
const readonlyArrays: ServiceOptions = {
  endpoints: [{ address: '10.0.0.1', port: 8080, tags: ['v2'] as const }] as const,
  retry: { retryOn: RETRY_ON, retriableStatusCodes: STATUSES, retriableHeaders: ['x-retry'] as const },
};
const readonlyDefaults: PolicyOptions = { retry: { retryOn: RETRY_ON } };
// A list of `host:port` strings (or strings and objects mixed) compiles, as the document takes it.
const endpointStrings: ServiceOptions = { endpoints: ['127.0.0.1:8080', '127.0.0.1:8081=2'] };
const endpointsMixed: ServiceOptions = {
  endpoints: ['127.0.0.1:8080', { address: '127.0.0.1', port: 8081 }] as const,
};
// @ts-expect-error an endpoint is a string or an object, not a port number
const endpointNumber: ServiceOptions = { endpoints: [8080] };
// @ts-expect-error a readonly array still holds only known conditions
const badReadonly: PolicyOptions = { retry: { retryOn: ['5xx', 'teapot'] as const } };
// hashOn names one source: `{ header, cookie }` does not compile, as it does not validate (probe7 defect 3).
// @ts-expect-error a header and a cookie in one hashOn does not compile
const hashOnBoth: PolicyOptions = { loadBalancer: { hashOn: { header: 'x-a', cookie: 'c' } } };
const hashOnHeader: ServiceOptions = { loadBalancer: { policy: 'ring_hash', hashOn: { header: 'x-a' } } };
const hashOnCookie: PolicyOptions = { loadBalancer: { policy: 'maglev', hashOn: { cookie: 'c' } } };
const hashOnSource: PolicyOptions = { loadBalancer: { policy: 'maglev', hashOn: 'source' } };
// @ts-expect-error an empty hashOn object does not compile
const hashOnEmpty: PolicyOptions = { loadBalancer: { policy: 'maglev', hashOn: {} } };
const options: MeshOptions = { services: { payments: good }, defaults: { retry: true } };
// Telemetry settings are partial at every depth: a port alone starts the admin server.
const adminPortOnly: MeshOptions = { telemetry: { admin: { port: 0 } } };
// @ts-expect-error a misspelt telemetry field does not compile
const adminTypo: MeshOptions = { telemetry: { admin: { prot: 0 } } };

describe('ServiceOptions (#10)', () => {
  it('is the typed document shape: the values above are also what the validator accepts or rejects', async () => {
    expect(options.services?.payments).toBe(good);
    for (const bad of [typoField, typoSection, badPolicy, rateTrue, badType, lbOff]) {
      expect(() => createMesh({ env: {}, services: { api: bad } })).toThrowError(/options\.services\.api\./);
    }
    expect(() => createMesh({ env: {}, services: { api: badReadonly } })).toThrowError(/retryOn/);
    for (const bad of [hashOnBoth, hashOnEmpty])
      expect(() => createMesh({ env: {}, services: { api: bad } })).toThrowError(
        /options\.services\.api\.loadBalancer\.hashOn: expected \{ header: name \}, \{ cookie: name \} or "source"/,
      );
    for (const ok of [
      readonlyArrays,
      readonlyDefaults,
      endpointStrings,
      endpointsMixed,
      hashOnHeader,
      hashOnCookie,
      hashOnSource,
    ])
      void createMesh({ env: {}, services: { api: ok } }).close();
    expect(() => createMesh({ env: {}, services: { api: endpointNumber } })).toThrowError(
      /options\.services\.api\.endpoints\[0\]/,
    );

    expect(adminTypo.telemetry).toBeDefined();
    const admin = createMesh({ env: {}, ...adminPortOnly });
    await expect(admin.admin()).resolves.toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await admin.close();

    const mesh = createMesh({ env: {}, ...options });
    expect(mesh.config('payments').resilience.retry?.maxRetries).toBe(2);
    void mesh.close();
  });
});

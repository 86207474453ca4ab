import { createMesh, MeshError } from 'proxyless';
import { describe, expect, it } from 'vitest';

/** The fields `createMesh` reports for `env`, or `[]` when it starts. */
async function problems(env: Record<string, string>): Promise<string[]> {
  let mesh: ReturnType<typeof createMesh> | undefined;
  try {
    mesh = createMesh({ env });
    return [];
  } catch (error) {
    if (!MeshError.is(error, 'MESH_CONFIG_INVALID')) throw error;
    return (error.details.issues ?? []).map((i) => i.field).sort();
  } finally {
    await mesh?.close();
  }
}

// docs/configuration.md: anything that does not parse is an error naming the variable, whatever
// registry is in use; a variable of a registry not in use is no exception (probe2 env-unread.ts).
describe('registry variables are checked whatever registry is selected', () => {
  it.each([
    [{ MESH_DNS_TIMEOUT: 'garbage' }, ['MESH_DNS_TIMEOUT']],
    [{ MESH_CONSUL_ONLY_PASSING: 'maybe' }, ['MESH_CONSUL_ONLY_PASSING']],
    [{ MESH_ETCD_LEASE_TTL: 'garbage' }, ['MESH_ETCD_LEASE_TTL']],
    [{ MESH_DNS_SERVICES: 'not a name' }, ['MESH_DNS_SERVICES[0]']],
  ])('rejects %o with no registry selected', async (env, fields) => {
    expect(await problems(env)).toEqual(fields);
  });

  it.each([
    // every bad variable of the registries not in use, at once
    [
      { MESH_REGISTRY: 'consul', MESH_DNS_TIMEOUT: 'x', MESH_ETCD_LEASE_TTL: 'x', MESH_ETCD_PREFIX: 'a b' },
      ['MESH_DNS_TIMEOUT', 'MESH_ETCD_LEASE_TTL', 'MESH_ETCD_PREFIX'],
    ],
    [{ MESH_REGISTRY: 'etcd', MESH_CONSUL_ZONE_KEY: 'a b' }, ['MESH_CONSUL_ZONE_KEY']],
    // a variable that selects one registry while another is named
    [{ MESH_REGISTRY: 'env', MESH_DNS_DOMAIN: 'svc.cluster.local' }, ['MESH_DNS_DOMAIN']],
    [{ MESH_REGISTRY: 'static', MESH_DNS_SERVERS: '10.0.0.2' }, ['MESH_DNS_SERVERS']],
    // (and `file` with no config file to read is an error of its own)
    [
      { MESH_REGISTRY: 'file', MESH_ETCD_ENDPOINTS: '127.0.0.1:2379' },
      ['MESH_ETCD_ENDPOINTS', 'MESH_REGISTRY'],
    ],
  ])('rejects %o with a registry named', async (env, fields) => {
    expect(await problems(env)).toEqual(fields);
  });

  it('starts with good values of registries not in use, and leaves CONSUL_* to Consul', async () => {
    expect(
      await problems({
        MESH_REGISTRY: 'env',
        MESH_DNS_TIMEOUT: '1s',
        MESH_DNS_DEFAULT_PORT: '8080',
        MESH_ETCD_LEASE_TTL: '30s',
        MESH_CONSUL_ONLY_PASSING: 'true',
        // Consul's own tools read these: the mesh checks them only when it uses Consul.
        CONSUL_HTTP_ADDR: 'ftp://not-checked',
        CONSUL_HTTP_SSL: 'maybe',
      }),
    ).toEqual([]);
    // MESH_DNS_SERVICES selects DNS as MESH_DNS_DOMAIN does: beside another registry it would be
    // ignored, so it is reported.
    expect(await problems({ MESH_REGISTRY: 'env', MESH_DNS_SERVICES: 'api.internal' })).toEqual([
      'MESH_DNS_SERVICES',
    ]);
    expect(await problems({ MESH_REGISTRY: 'consul', CONSUL_HTTP_SSL: 'maybe' })).toEqual([
      'CONSUL_HTTP_SSL',
    ]);
  });
});

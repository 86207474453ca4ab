import { describe, expect, it } from 'vitest';
import { createMesh } from '../index.js';

describe('suggestions for an unknown MESH_* variable', () => {
  it.each([
    ['MESH_RETRY', '3', 'MESH_RETRIES'],
    ['MESH_HEDGE', 'p95', 'MESH_HEDGE_DELAY'],
    ['MESH_CONFIG', '/etc/mesh.json', 'MESH_CONFIG_FILE'],
    // Before: "MESH_ZONE" and "MESH_CONSUL_TAG", the nearest by edit distance.
    ['MESH_ADMIN', '9901', 'MESH_ADMIN_PORT'],
    ['MESH_CONSUL_ADDR', '127.0.0.1:8500', 'CONSUL_HTTP_ADDR'],
  ])('%s=%s suggests %s, naming the variable and the value', (name, value, suggested) => {
    expect(() => createMesh({ env: { [name]: value } })).toThrow(
      new RegExp(`${name}: [^\\n]*did you mean "${suggested}"[^\\n]*got ${JSON.stringify(value)}`),
    );
  });
});

describe('a credential under an unknown or misspelt name', () => {
  it.each([
    ['MESH_CONSUL_TOKEN', 'CONSUL_HTTP_TOKEN'],
    ['MESH_ETCD_PASSWORD_FILE', undefined],
    ['MESH_OTLP_HEADERS', undefined],
    ['mesh_etcd_password', 'MESH_ETCD_PASSWORD'],
  ])('%s is refused without quoting its value (its length only)', (name, suggested) => {
    const secret = 'tok-S3CRET-1';
    let message = '';
    let details = '';
    try {
      createMesh({ env: { [name]: secret } });
    } catch (e) {
      message = (e as Error).message;
      details = JSON.stringify((e as { details?: unknown }).details);
    }
    expect(message).toContain(`${name}: `);
    if (suggested) expect(message).toContain(`"${suggested}"`);
    expect(message).toContain(`<redacted: ${secret.length} characters>`);
    expect(`${message}${details}`).not.toContain('S3CRET');
  });
});

describe('a known variable in the wrong case', () => {
  // Before: ignored, so the setting was silently the default.
  it.each([
    ['mesh_timeout', 'MESH_TIMEOUT'],
    ['Mesh_Retries', 'MESH_RETRIES'],
    ['mesh_endpoints_payments', 'MESH_ENDPOINTS_PAYMENTS'],
  ])('%s is refused, naming the capitalised name', (name, upper) => {
    expect(() => createMesh({ env: { [name]: '2' } })).toThrow(new RegExp(`${name}: [^\\n]*"${upper}"`));
  });

  it('other names are not the mesh’s', () => {
    expect(() => createMesh({ env: { mesh_something_else: 'x', meshy: 'y' } }).close()).not.toThrow();
  });
});

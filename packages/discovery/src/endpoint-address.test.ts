/**
 * An IPv6 address with a zone id (`fe80::1%eth0`) cannot be dialled: the WHATWG URL parser, and
 * so undici's URL-based pools, refuse it (ERR_INVALID_URL). Every source of endpoint addresses
 * refuses it up front, saying why, instead of accepting it and failing every request.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Issues, MeshError } from '@proxyless/core';
import { afterEach, describe, expect, it } from 'vitest';
import { validateRegistration } from './consul/registration.js';
import {
  checkEndpointAddress,
  parseEndpointEntry,
  parseEndpointList,
  parseEndpointSpec,
} from './endpoint-doc.js';
import { createEnvResolver } from './env-resolver.js';
import { parseEtcdValue } from './etcd/codec.js';
import { validateEtcdRegistration } from './etcd/registrar.js';
import { createFileResolver } from './file-resolver.js';

const ZONED = ['fe80::1%eth0', '::1%lo', 'fe80::a:b:c:d%en0.100'];
const WHY =
  /without a zone id: an IPv6 address with a zone id \(%[\w.]+\) cannot be dialled by undici's URL-based pools/;

function caught(fn: () => unknown): MeshError {
  try {
    fn();
  } catch (error) {
    return error as MeshError;
  }
  throw new Error('expected an error');
}

describe('IPv6 zone ids', () => {
  it.each(ZONED)('undici cannot dial %s (new URL refuses it, as %25 too)', (a) => {
    expect(() => new URL(`http://[${a}]:80/`)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_URL' }));
    expect(() => new URL(`http://[${a.replace('%', '%25')}]:80/`)).toThrow();
  });

  it.each(ZONED)('checkEndpointAddress refuses %s, saying why', (a) => {
    expect(checkEndpointAddress(a)).toEqual({ expected: expect.stringMatching(WHY) });
    expect(checkEndpointAddress(`[${a}]`)).toEqual({ expected: expect.stringMatching(WHY) });
  });

  it('checkEndpointAddress keeps what undici can dial, brackets removed', () => {
    expect(checkEndpointAddress('fe80::1')).toBe('fe80::1');
    expect(checkEndpointAddress('[::1]')).toBe('::1');
    expect(checkEndpointAddress('10.0.0.1')).toBe('10.0.0.1');
    expect(checkEndpointAddress('api.internal')).toBe('api.internal');
    expect(checkEndpointAddress('10.0.0.256')).toEqual({
      expected: 'an IPv4 or IPv6 address or a host name',
    });
  });

  it.each(ZONED)('an endpoint object (config file, code options) with address %s is refused', (a) => {
    const issues = new Issues();
    expect(parseEndpointEntry({ address: a, port: 80 }, 'services.api.endpoints[0]', issues)).toBeUndefined();
    expect(issues.list).toEqual([
      { field: 'services.api.endpoints[0].address', expected: expect.stringMatching(WHY), value: a },
    ]);
  });

  it.each(ZONED)('a host:port list item [%s]:80 is refused, in a string and in a list', (a) => {
    const item = `[${a}]:80`;
    const e = caught(() => parseEndpointSpec(`10.0.0.1:80,${item}=2`, 'services.api.endpoints'));
    expect(MeshError.is(e, 'MESH_CONFIG_INVALID')).toBe(true);
    expect(e.message).toMatch(WHY);
    expect(e.message).toContain(JSON.stringify(`${item}=2`));
    const issues = new Issues();
    expect(parseEndpointList([item], 'services.api.endpoints', issues)).toBeUndefined();
    expect(issues.list).toEqual([
      { field: 'services.api.endpoints[0]', expected: expect.stringMatching(WHY), value: item },
    ]);
  });

  it('an etcd value with a zone id is refused, naming the key and value', () => {
    const key = '/proxyless/services/pay/a';
    const r = parseEtcdValue(key, JSON.stringify({ address: '::1%lo', port: 8080 }), 'a');
    expect(r.endpoint).toBeUndefined();
    expect(r.issues).toEqual([
      { field: `${key}.address`, expected: expect.stringMatching(WHY), value: '::1%lo' },
    ]);
  });

  it('MESH_ENDPOINTS_* with a zone id fails, naming the variable', () => {
    const e = caught(() => createEnvResolver({ env: { MESH_ENDPOINTS_API: '[fe80::1%eth0]:8080' } }));
    expect(MeshError.is(e, 'MESH_CONFIG_INVALID')).toBe(true);
    expect(e.details.issues).toEqual([
      { field: 'MESH_ENDPOINTS_API', expected: expect.stringMatching(WHY), value: '[fe80::1%eth0]:8080' },
    ]);
  });

  describe('config file', () => {
    let dir: string | undefined;
    afterEach(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('an endpoint with a zone id rejects the document, naming the field and value', () => {
      dir = mkdtempSync(join(tmpdir(), 'proxyless-zone-'));
      const path = join(dir, 'mesh.json');
      writeFileSync(
        path,
        JSON.stringify({
          services: {
            api: {
              endpoints: [
                { address: '10.0.0.1', port: 80 },
                { address: 'fe80::1%eth0', port: 81 },
              ],
            },
          },
        }),
      );
      const e = caught(() => createFileResolver({ path }));
      expect(MeshError.is(e, 'MESH_CONFIG_INVALID')).toBe(true);
      expect(e.message).toContain('services.api.endpoints[1].address');
      expect(e.message).toContain('"fe80::1%eth0"');
      expect(e.message).toMatch(WHY);
    });
  });

  it('registrars refuse to register an address with a zone id', () => {
    const reg = { service: 'pay', address: 'fe80::1%eth0', port: 8080 };
    const etcd = caught(() => validateEtcdRegistration(reg));
    expect(etcd.details.issues).toEqual([
      { field: 'address', expected: expect.stringMatching(WHY), value: 'fe80::1%eth0' },
    ]);
    const consul = caught(() => validateRegistration(reg, 'zone'));
    expect(consul.details.issues).toEqual([
      { field: 'registration.address', expected: expect.stringMatching(WHY), value: 'fe80::1%eth0' },
    ]);
  });

  it.each(['127.0.0.1:80', '999.1.1.1', 'a..b'])(
    'the Consul registrar refuses %j, an address every reader would reject the whole answer for',
    (address) => {
      const e = caught(() => validateRegistration({ service: 'pay', address, port: 8080 }, 'zone'));
      expect(e.details.issues).toEqual([
        { field: 'registration.address', expected: 'an IPv4 or IPv6 address or a host name', value: address },
      ]);
    },
  );
});

/**
 * One IPv6 address, one endpoint (probe27 IPv6 defects 1–4): addresses are kept in their canonical
 * text, a duplicate is found by `address:port` and by id, and named as ids are written.
 */
describe('IPv6 endpoints: canonical, unique, named in brackets', () => {
  const listIssues = (value: unknown) => {
    const issues = new Issues();
    const list = parseEndpointList(value, 'endpoints', issues);
    return { list, issues: issues.list };
  };

  it('keeps each address in its canonical text', () => {
    const { list } = listIssues([
      { address: '0:0:0:0:0:0:0:1', port: 80 },
      { address: '[FE80::0:1]', port: 81 },
      { address: '::FFFF:10.0.0.1', port: 82 },
      '[2001:DB8:0:0::1]:83',
    ]);
    expect(list?.map((e) => e.address)).toEqual(['::1', 'fe80::1', '::ffff:10.0.0.1', '2001:db8::1']);
    expect(parseEndpointSpec('[0:0::1]:80', 'x')[0]?.address).toBe('::1');
  });

  it('one address written two ways is listed twice', () => {
    expect(listIssues('[::1]:8080,[0:0:0:0:0:0:0:1]:8080').issues).toEqual([
      {
        field: 'endpoints[1]',
        expected: 'a unique endpoint (this one is listed twice)',
        value: '[::1]:8080',
      },
    ]);
    expect(
      listIssues([
        { address: '::1', port: 80 },
        { address: '0000::0001', port: 80 },
      ]).issues.map((i) => i.value),
    ).toEqual(['[::1]:80']);
  });

  it('a host name is kept in lower case: one written in two cases is listed twice', () => {
    expect(listIssues('API.Local:80').list?.map((e) => e.address)).toEqual(['api.local']);
    expect(listIssues('API.local:80,api.local:80').issues).toEqual([
      {
        field: 'endpoints[1]',
        expected: 'a unique endpoint (this one is listed twice)',
        value: 'api.local:80',
      },
    ]);
    expect(listIssues([{ address: 'Db.Internal', port: 5432 }, 'db.internal:5432']).issues).toHaveLength(1);
  });

  it('a duplicate is named as its id is written, with brackets', () => {
    expect(listIssues('[::1]:8080,[::1]:8080').issues[0]?.value).toBe('[::1]:8080');
    const env = caught(() => createEnvResolver({ env: { MESH_ENDPOINTS_B: '[::1]:8080,[::1]:8080' } }));
    expect(env.message).toContain('([::1]:8080 is listed twice)');
  });

  it('an explicit id equal to another endpoint’s default id is a duplicate', () => {
    const { issues } = listIssues([
      { id: '[::1]:80', address: '127.0.0.1', port: 81 },
      { address: '::1', port: 80 },
    ]);
    expect(issues.map((i) => i.value)).toEqual(['[::1]:80']);
  });

  it('the same address:port under two ids is a duplicate (as the docs say)', () => {
    const { issues } = listIssues([
      { id: 'a', address: '10.0.0.1', port: 80 },
      { id: 'b', address: '10.0.0.1', port: 80 },
    ]);
    expect(issues.map((i) => i.value)).toEqual(['10.0.0.1:80']);
  });

  it('both registrars take an IPv6 address bare', () => {
    const reg = { service: 'pay', address: '[::1]', port: 8080 };
    expect(caught(() => validateEtcdRegistration(reg)).details.issues?.[0]?.field).toBe('address');
    expect(caught(() => validateRegistration(reg, 'zone')).details.issues).toEqual([
      {
        field: 'registration.address',
        expected: 'an IPv6 address without brackets (::1, not [::1])',
        value: '[::1]',
      },
    ]);
  });
});

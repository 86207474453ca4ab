import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MeshError } from './errors.js';
import {
  closestName,
  isIPv6,
  parseBoolean,
  parseDuration,
  parseHostPort,
  parseHostPortList,
  parseInteger,
  parseRatio,
} from './parse.js';

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['5s', 5000],
    ['1m30s', 90_000],
    ['1.5h', 5_400_000],
    ['100us', 0.1],
    ['250', 250],
    [0, 0],
    [1500, 1500],
  ])('reads %s as %s ms', (input, ms) => {
    expect(parseDuration(input, 'MESH_TIMEOUT')).toBe(ms);
  });

  it.each(['', 'abc', '5 s', '-1s', '1d', 's', '1m30', '5sec'])(
    'rejects %j naming the field and value',
    (input) => {
      expect(() => parseDuration(input, 'MESH_TIMEOUT')).toThrow(MeshError);
      try {
        parseDuration(input, 'MESH_TIMEOUT');
      } catch (e) {
        expect(MeshError.is(e, 'MESH_CONFIG_INVALID')).toBe(true);
        expect((e as MeshError).message).toContain('MESH_TIMEOUT');
        expect((e as MeshError).message).toContain(JSON.stringify(input));
        expect((e as MeshError).details).toMatchObject({ field: 'MESH_TIMEOUT', value: input });
      }
    },
  );

  it('enforces bounds', () => {
    expect(() => parseDuration('2h', 'x', { max: 3_600_000 })).toThrow(/x: expected a duration/);
  });

  it('lets only MeshError escape for any input', () => {
    fc.assert(
      fc.property(fc.anything(), (v) => {
        try {
          const ms = parseDuration(v, 'f');
          return Number.isFinite(ms) && ms >= 0;
        } catch (e) {
          return MeshError.is(e, 'MESH_CONFIG_INVALID');
        }
      }),
    );
  });
});

describe('parseBoolean / parseInteger / parseRatio', () => {
  it('reads the usual spellings of booleans', () => {
    for (const t of ['true', 'TRUE', '1', 'yes', 'on']) expect(parseBoolean(t, 'b')).toBe(true);
    for (const f of ['false', '0', 'no', 'Off']) expect(parseBoolean(f, 'b')).toBe(false);
    expect(() => parseBoolean('maybe', 'MESH_PASSTHROUGH')).toThrow(/MESH_PASSTHROUGH.*"maybe"/);
  });
  it('bounds integers and rejects fractions', () => {
    expect(parseInteger('10', 'n', { min: 0, max: 10 })).toBe(10);
    expect(() => parseInteger('11', 'n', { min: 0, max: 10 })).toThrow(/integer 0..10/);
    expect(() => parseInteger('1.5', 'n')).toThrow(MeshError);
    expect(() => parseInteger('three', 'MESH_RETRIES')).toThrow(/MESH_RETRIES.*"three"/);
  });
  it('reads ratios as fractions or percentages', () => {
    expect(parseRatio('20%', 'r')).toBeCloseTo(0.2);
    expect(parseRatio(0.5, 'r')).toBe(0.5);
    expect(() => parseRatio('120%', 'r')).toThrow(MeshError);
    // A string is a percentage only, as the JSON Schema says (PERCENT_PATTERN): not "0.2", not ".5%".
    for (const v of ['0.2', '.2', '1e-1', '.5%', '5.%', 'lots'])
      expect(() => parseRatio(v, 'r'), v).toThrow(/r: expected a ratio 0..1 or a percentage/);
  });
  it('integer parser lets only MeshError escape', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.double(), fc.integer()), (v) => {
        try {
          return Number.isSafeInteger(parseInteger(v, 'f'));
        } catch (e) {
          return MeshError.is(e, 'MESH_CONFIG_INVALID');
        }
      }),
    );
  });
});

describe('parseHostPort', () => {
  it('reads names, IPv4 and bracketed IPv6', () => {
    expect(parseHostPort('payments.internal:8080', 'f')).toEqual({
      address: 'payments.internal',
      port: 8080,
    });
    expect(parseHostPort('127.0.0.1:1', 'f')).toEqual({ address: '127.0.0.1', port: 1 });
    expect(parseHostPort('[::1]:9000', 'f')).toEqual({ address: '::1', port: 9000 });
    expect(parseHostPort('[fe80::1%eth0]:9000', 'f')).toEqual({ address: 'fe80::1%eth0', port: 9000 });
    // Digits inside labels, and a last label that only starts with a digit, are names.
    expect(parseHostPort('node-1.1host.example:80', 'f')).toEqual({
      address: 'node-1.1host.example',
      port: 80,
    });
    expect(parseHostPort('0x1f.com:80', 'f')).toEqual({ address: '0x1f.com', port: 80 });
  });
  it('accepts as a name exactly what the WHATWG URL parser accepts as a host', () => {
    for (const host of [
      'api.internal',
      'a1.b2',
      '1host.example',
      '0x1f.com',
      '10.0.0.256',
      'example.123',
      'x.0x1f',
      'x.0x',
    ]) {
      let url = true;
      try {
        new URL(`http://${host}/`);
      } catch {
        url = false;
      }
      let ours = true;
      try {
        parseHostPort(`${host}:80`, 'f');
      } catch {
        ours = false;
      }
      expect({ host, accepted: ours }).toEqual({ host, accepted: url });
    }
  });
  it.each([
    '::1:80',
    'host',
    'host:',
    ':80',
    'host:0',
    'host:65536',
    'host:http',
    '[::1]80',
    '[zz]:80',
    'a b:80',
    '',
    // A last label that is a number makes the host an IPv4 address to URL parsers: not one here.
    '10.0.0.256:80',
    '256.1.1.1:80',
    'api.123:80',
    'api.0x1f:80',
  ])('rejects %j', (v) => {
    expect(() => parseHostPort(v, 'MESH_ENDPOINTS_X')).toThrow(/MESH_ENDPOINTS_X/);
  });
  it('names the list index of a bad item', () => {
    expect(() => parseHostPortList('a:1,,b:2', 'L')).toThrow(/L\[1\]/);
  });
  it('recognises IPv6 forms', () => {
    expect(isIPv6('::')).toBe(true);
    expect(isIPv6('2001:db8::ff00:42:8329')).toBe(true);
    expect(isIPv6('::ffff:192.0.2.1')).toBe(true);
    expect(isIPv6('1:2:3:4:5:6:7:8:9')).toBe(false);
    expect(isIPv6('1::2::3')).toBe(false);
  });
});

describe('closestName', () => {
  it('suggests a near miss and nothing for a far one', () => {
    expect(closestName('MESH_LB_POLCY', ['MESH_LB_POLICY', 'MESH_PASSTHROUGH'])).toBe('MESH_LB_POLICY');
    expect(closestName('MESH_COMPLETELY_DIFFERENT', ['MESH_LB_POLICY'])).toBeUndefined();
  });

  const ENV = ['MESH_REGISTRY', 'MESH_RETRIES', 'MESH_RETRY_ON', 'MESH_RETRY_BUDGET', 'MESH_HEDGE_DELAY'];

  it('suggests the one name that continues the given one at a word boundary', () => {
    expect(closestName('MESH_HEDGE', ENV)).toBe('MESH_HEDGE_DELAY');
    expect(closestName('MESH_CONFIG', ['MESH_CONFIG_FILE', 'MESH_LOG_LEVEL'])).toBe('MESH_CONFIG_FILE');
    expect(closestName('least', ['round_robin', 'least_request'])).toBe('least_request');
    expect(closestName('retry', ['retryOn', 'backoff'])).toBe('retryOn');
    // Not in the middle of a word.
    expect(closestName('MESH_HEDG', ['MESH_HEDGER_X'])).toBeUndefined();
  });

  it('breaks an edit-distance tie by word count, then by the longer common beginning', () => {
    // Several names continue MESH_RETRY: none is preferred for that; MESH_RETRIES (a word
    // changed) wins over MESH_REGISTRY (same distance, shorter common beginning) and
    // MESH_RETRY_ON (same distance, a word more).
    expect(closestName('MESH_RETRY', ENV)).toBe('MESH_RETRIES');
    expect(closestName('MESH_RETRY', [...ENV].reverse())).toBe('MESH_RETRIES');
  });

  it('suggests the one name whose words the given one abbreviates', () => {
    const outlier = ['minimumHosts', 'requestVolume', 'stdevFactor', 'enforcingSuccessRate'];
    expect(closestName('minHosts', outlier)).toBe('minimumHosts');
    expect(closestName('reqVolume', outlier)).toBe('requestVolume');
    expect(closestName('maxReq', ['maxRequests', 'maxRetries'])).toBe('maxRequests');
    // Both read so: no guess.
    expect(closestName('maxRe', ['maxRequests', 'maxRetries'])).toBeUndefined();
  });

  it('reaches further for a name that begins as the candidate does', () => {
    const sections = ['retry', 'timeout', 'perTryTimeout', 'hedge', 'rateLimit', 'circuitBreaker'];
    expect(closestName('retires', sections)).toBe('retry');
    expect(closestName('tiemout', sections)).toBe('timeout');
    expect(closestName('banana', sections)).toBeUndefined();
  });
});

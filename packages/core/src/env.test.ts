import { describe, expect, it } from 'vitest';
import { envDuration, envInteger, envNumber, JSON_NUMBER } from './env.js';
import { MeshError } from './errors.js';

/** The issue `fn` throws, or `undefined`. */
function issueOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    if (MeshError.is(error, 'MESH_CONFIG_INVALID')) return error.details.issues?.[0];
    throw error;
  }
  return undefined;
}

/** Whether JSON reads `text` as a value. */
function jsonReads(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

const READERS = {
  envInteger: (raw: string) => envInteger({ X: raw }, 'X', { min: 1, max: 4096 }),
  envNumber: (raw: string) => envNumber({ X: raw }, 'X'),
  envDuration: (raw: string) => envDuration({ X: raw }, 'X', { min: 0.1 }),
};
type Reader = keyof typeof READERS;

describe('env numbers as JSON writes them (probe30 config defect 1)', () => {
  it('JSON_NUMBER is the JSON grammar', () => {
    const samples = ['0', '-0', '10', '1.5', '1e3', '1E+3', '2.5e-1', '-7'];
    const refused = ['010', '.5', '5.', '+5', '0x10', 'Infinity', 'NaN', '1_000', '1e', '', ' 1', '-'];
    for (const v of samples) expect({ v, ok: JSON_NUMBER.test(v) }).toEqual({ v, ok: true });
    for (const v of refused) expect({ v, ok: JSON_NUMBER.test(v) }).toEqual({ v, ok: false });
    // As JSON.parse reads the same text.
    for (const v of [...samples, '010', '.5', '5.', '+5', '1e', '0x10'])
      expect({ v, ok: JSON_NUMBER.test(v) }).toEqual({ v, ok: jsonReads(v) });
  });

  /** [reader, value, result] */
  const READ: Array<[Reader, string, number | undefined]> = [
    ['envInteger', '1e2', 100],
    ['envInteger', ' 2.0 ', 2],
    ['envInteger', '', undefined],
    ['envNumber', '1e3', 1000],
    ['envNumber', '0.5', 0.5],
    ['envDuration', '1e3', 1000],
    ['envDuration', '.5', 0.5],
    ['envDuration', '010', 10],
    ['envDuration', '1.5s', 1500],
  ];
  it.each(READ)('%s reads "%s" as %s', (reader, raw, value) => {
    expect(READERS[reader](raw)).toBe(value);
  });

  /** [reader, value] */
  const REFUSED: Array<[Reader, string]> = [
    ['envInteger', '010'],
    ['envInteger', '+5'],
    ['envInteger', '1.5e0'],
    ['envInteger', '1e4'],
    ['envNumber', '.5'],
    ['envNumber', '010'],
    ['envNumber', 'Infinity'],
    ['envDuration', '+5'],
    ['envDuration', '-1e3'],
  ];
  it.each(REFUSED)('%s refuses "%s", naming the variable and quoting the value', (reader, raw) => {
    expect(issueOf(() => READERS[reader](raw))).toEqual({
      field: 'X',
      expected: expect.any(String),
      value: raw,
    });
  });
});

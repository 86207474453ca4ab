/**
 * The chaos load's sample log: what the load records per request must not be counted as the mesh's
 * heap growth by the memory soak (scenario 10), and must come back as it was recorded.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { type Sample, SampleLog } from './harness.js';

function gcFunction(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

function heapAfterGc(gc: () => void): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const sample = (i: number): Sample => ({
  at: i * 0.5 + 0.25,
  ms: (i % 97) + 0.125,
  error: i % 10 === 0 ? `HTTP_50${i % 4}` : undefined,
  phase: i % 10 === 0 ? (i % 20 === 0 ? 'head' : 'body') : undefined,
  method: i % 3 === 0 ? 'POST' : 'GET',
});

describe('SampleLog', () => {
  it('gives back every sample as recorded, in order, past its initial capacity', () => {
    const log = new SampleLog();
    const n = 5000;
    for (let i = 0; i < n; i++) log.add(sample(i));
    expect(log.length).toBe(n);
    const out = log.samples();
    expect(out).toHaveLength(n);
    for (const i of [0, 1, 10, 20, 1023, 1024, 2047, 2048, 4999]) expect(out[i]).toEqual(sample(i));
    expect(out.filter((s) => s.error !== undefined)).toHaveLength(n / 10);
  });

  it('keeps the samples of a long load off the JavaScript heap', () => {
    const gc = gcFunction();
    const n = 200_000;
    const objects: Sample[] = [];
    const before = heapAfterGc(gc);
    for (let i = 0; i < n; i++) objects.push(sample(i));
    // What the soak counted before: an object per request, tens of bytes each.
    const asObjects = heapAfterGc(gc) - before;
    expect(objects).toHaveLength(n);
    objects.length = 0;
    const log = new SampleLog();
    const start = heapAfterGc(gc);
    for (let i = 0; i < n; i++) log.add(sample(i));
    const asLog = heapAfterGc(gc) - start;
    expect(log.length).toBe(n);
    expect(asObjects).toBeGreaterThan(8 * 2 ** 20);
    expect(asLog).toBeLessThan(2 ** 20);
  });
});

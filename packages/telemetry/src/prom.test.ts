import * as promClient from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Counter, Gauge, Histogram, Registry, register } from './prom.js';

describe('prom-client, loaded file by file', () => {
  it('gives the very classes and global registry of the entry (one instance per file)', () => {
    expect(register).toBe(promClient.register);
    expect(Registry).toBe(promClient.Registry);
    expect(Counter).toBe(promClient.Counter);
    expect(Gauge).toBe(promClient.Gauge);
    expect(Histogram).toBe(promClient.Histogram);
  });
});

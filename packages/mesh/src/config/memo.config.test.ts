import { Issues } from '@proxyless/core';
import { describe, expect, it, vi } from 'vitest';
import { PolicyMemo, parseDocumentLayers } from './layers.js';

const retry = { maxRetries: 2, backoff: { base: '10ms', max: '100ms' } };
const outlier = { consecutive5xx: 3, baseEjectionTime: '15s' };

describe('parsing a document with repeated sections', () => {
  it('parses a section once when services repeat it, even when their policies differ', () => {
    const doc = {
      services: {
        a: { timeout: '1s', retry: { ...retry }, outlierDetection: { ...outlier } },
        b: { timeout: '2s', retry: { ...retry }, outlierDetection: { ...outlier } },
      },
    };
    const issues = new Issues();
    const layers = parseDocumentLayers(doc, 1, issues, new PolicyMemo());
    expect(issues.list).toEqual([]);
    const a = layers.services.get('a')?.patch;
    const b = layers.services.get('b')?.patch;
    expect(a?.resilience?.timeoutMs).toBe(1000);
    expect(b?.resilience?.timeoutMs).toBe(2000);
    // The same parsed section object: parsed once.
    expect(a?.resilience?.retry).toBe(b?.resilience?.retry);
    expect(a?.balancer?.outlierDetection).toBe(b?.balancer?.outlierDetection);
  });

  it('reports a bad section under every service that repeats it (nothing bad is remembered)', () => {
    const bad = { maxRetries: -1, backoff: { base: '10ms', max: '1ms' } };
    const doc = {
      services: {
        a: { timeout: '1s', retry: { ...bad } },
        b: { timeout: '2s', retry: { ...bad } },
        c: { timeout: '3s', retry: { ...retry } },
      },
    };
    const memo = new PolicyMemo();
    for (let version = 1; version <= 2; version++) {
      const issues = new Issues();
      parseDocumentLayers(doc, version, issues, memo);
      const fields = issues.list.map((i) => i.field);
      expect(fields).toContain('services.a.retry.maxRetries');
      expect(fields).toContain('services.b.retry.maxRetries');
      // The cross-field rule of the section (base ≤ max) too, for each service, every version.
      expect(fields.filter((f) => f.startsWith('services.a.retry.backoff')).length).toBeGreaterThan(0);
      expect(fields.filter((f) => f.startsWith('services.b.retry.backoff')).length).toBeGreaterThan(0);
      expect(fields.some((f) => f.startsWith('services.c'))).toBe(false);
    }
  });
});

describe('parsing a document whose policies do not repeat', () => {
  it('gives every service its own policy and reports every bad one, however many come first', () => {
    // 300 services with distinct policies: past the sample, the rest are parsed without a key.
    const services: Record<string, unknown> = {};
    for (let i = 0; i < 300; i++)
      services[`s${i}`] = { timeout: `${1000 + i}ms`, retry: { maxRetries: i % 5 } };
    services.bad = { timeout: '1s', retry: { maxRetries: -1 } };
    for (let i = 0; i < 50; i++) services[`r${i}`] = { timeout: '2s', retry: { ...retry } };
    const memo = new PolicyMemo();
    for (let version = 1; version <= 2; version++) {
      const issues = new Issues();
      const layers = parseDocumentLayers({ services }, version, issues, memo);
      expect(issues.list.map((i) => i.field)).toEqual(['services.bad.retry.maxRetries']);
      for (let i = 0; i < 300; i++) {
        const patch = layers.services.get(`s${i}`)?.patch.resilience;
        expect(patch?.timeoutMs).toBe(1000 + i);
        const r = patch?.retry;
        expect(r === false ? r : r?.maxRetries).toBe(i % 5);
      }
      expect(layers.services.get('r49')?.patch.resilience?.timeoutMs).toBe(2000);
    }
  });
});

describe('a section whose values do not repeat', () => {
  it('stops being keyed after the sample, while the sections that repeat stay shared', () => {
    let keyed = 0;
    // Count the circuitBreaker sections serialised as keys of their own (a whole policy's key
    // holds a `timeout` too). The memo keys plain JSON data only, so the section stays plain.
    const stringify = JSON.stringify;
    const spy = vi.spyOn(JSON, 'stringify').mockImplementation((value, ...rest) => {
      if (typeof value === 'object' && value !== null && 'maxRequests' in value && !('timeout' in value))
        keyed++;
      return stringify(value, ...(rest as [never]));
    });
    const breaker = (maxRequests: number): Record<string, unknown> => ({ maxRequests });
    const document = (version: number): unknown => {
      const services: Record<string, unknown> = {};
      for (let i = 0; i < 300; i++)
        services[`s${i}`] = {
          timeout: `${1000 + i}ms`,
          retry: { ...retry },
          circuitBreaker: breaker(version * 1000 + i),
        };
      services.bad = { timeout: '1s', circuitBreaker: { maxRequests: 0 } };
      return { services };
    };
    const memo = new PolicyMemo();
    for (let version = 1; version <= 2; version++) {
      keyed = 0;
      const issues = new Issues();
      const layers = parseDocumentLayers(document(version), version, issues, memo);
      expect(issues.list.map((i) => i.field)).toEqual(['services.bad.circuitBreaker.maxRequests']);
      // Keyed for the sample of each document (the next one samples again), not for all 300.
      expect(keyed).toBe(128);
      for (let i = 0; i < 300; i++) {
        const breakerConfig = layers.services.get(`s${i}`)?.patch.resilience?.circuitBreaker;
        expect(breakerConfig === false ? breakerConfig : breakerConfig?.maxRequests).toBe(version * 1000 + i);
      }
      // The retry section, the same under every service, is still parsed once.
      expect(layers.services.get('s299')?.patch.resilience?.retry).toBe(
        layers.services.get('s0')?.patch.resilience?.retry,
      );
    }
    spy.mockRestore();
  });
});

import type { Interceptor } from '@proxyless/core';
import { POLICY_ROLES } from '@proxyless/resilience';
import { describe, expect, it } from 'vitest';
import { buildStack, MESH_STACK } from './stack.js';

const stage = (): Interceptor => (dispatch) => (opts, handler) => dispatch(opts, handler);

describe('the mesh stack (one order, by role)', () => {
  it('places every stage by its role, whatever order the policy lists them in', () => {
    const retry = stage();
    const breaker = stage();
    const deadline = stage();
    const call = stage();
    const attempt = stage();
    const built = buildStack({
      policy: new Map([
        ['circuitBreaker', breaker],
        ['retry', retry],
        ['deadline', deadline],
      ]),
      telemetry: { call, attempt },
    });
    expect(built.roles).toEqual(['telemetry', 'deadline', 'retry', 'circuitBreaker', 'telemetryAttempt']);
    expect(built.interceptors).toEqual([call, deadline, retry, breaker, attempt]);
  });

  it('leaves out the roles that are off', () => {
    const built = buildStack({ policy: new Map([['hedge', stage()]]), telemetry: undefined });
    expect(built.roles).toEqual(['hedge']);
  });

  it('refuses a policy stage that has no place in the table', () => {
    expect(() => buildStack({ policy: new Map([['mystery', stage()]]), telemetry: undefined })).toThrow(
      /policy stage "mystery" has no place in MESH_STACK/,
    );
  });

  it('takes the policy stages in their one order, with telemetry around them', () => {
    expect(MESH_STACK.map((e) => e.role)).toEqual(['telemetry', ...POLICY_ROLES, 'telemetryAttempt']);
  });

  it('lists every role once', () => {
    const roles = MESH_STACK.map((e) => e.role);
    expect(new Set(roles).size).toBe(roles.length);
  });
});

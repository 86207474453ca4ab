import { balancerEnvVars } from '@proxyless/balancer';
import type { EnvVarSpec } from '@proxyless/core';
import { consulEnvVars, dnsEnvVars, embeddedEnvVars, etcdEnvVars } from '@proxyless/discovery';
import { resilienceEnvVars } from '@proxyless/resilience';
import { telemetryEnvVars } from '@proxyless/telemetry';
import { meshEnvVars } from './mesh-env.js';

/**
 * Every environment variable any part of the mesh reads, deduplicated by name (first owner
 * wins). `docs/configuration.md` lists exactly these; a test compares the two.
 */
export const allEnvVars: readonly EnvVarSpec[] = dedupe([
  ...meshEnvVars,
  ...embeddedEnvVars,
  ...dnsEnvVars,
  ...consulEnvVars,
  ...etcdEnvVars,
  ...balancerEnvVars,
  ...resilienceEnvVars,
  ...telemetryEnvVars,
]);

function dedupe(specs: readonly EnvVarSpec[]): readonly EnvVarSpec[] {
  const seen = new Map<string, EnvVarSpec>();
  for (const s of specs) if (!seen.has(s.name)) seen.set(s.name, s);
  return Object.freeze([...seen.values()]);
}

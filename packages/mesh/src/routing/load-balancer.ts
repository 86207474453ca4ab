/**
 * `service-resolver` `LoadBalancer` → the balancer's `loadBalancer` settings. Consul's policy
 * names are the balancer's (`round_robin`, `random`, `least_request`, `ring_hash`, `maglev`;
 * `""` is round robin). The first `HashPolicies` entry the balancer can follow (header, cookie,
 * source IP) becomes `hashOn`; `query_parameter` hashing and cookie generation (`CookieConfig`)
 * have no balancer counterpart and are reported by {@link unsupportedHashPolicies}.
 */
import type { HashOn, LoadBalancerPatch, LoadBalancerPolicy } from '@proxyless/balancer';
import type { HashPolicy, LoadBalancer } from './entries.js';

/** Map a resolver's `LoadBalancer` onto the balancer's patch; `undefined` when absent. */
export function mapLoadBalancer(lb: LoadBalancer | undefined): LoadBalancerPatch | undefined {
  if (!lb) return undefined;
  const policy: LoadBalancerPolicy =
    lb.Policy === '' || lb.Policy === undefined ? 'round_robin' : (lb.Policy as LoadBalancerPolicy);
  const out: LoadBalancerPatch = { policy };
  const choices = lb.LeastRequestConfig?.ChoiceCount;
  if (policy === 'least_request' && choices) out.choiceCount = Math.max(2, choices);
  const ring = lb.RingHashConfig;
  if (policy === 'ring_hash' && ring?.MinimumRingSize) out.minRingSize = ring.MinimumRingSize;
  if (policy === 'ring_hash' && ring?.MaximumRingSize) out.maxRingSize = ring.MaximumRingSize;
  if (policy === 'ring_hash' || policy === 'maglev') {
    const hashOn = firstHashOn(lb.HashPolicies ?? []);
    if (hashOn !== undefined) out.hashOn = hashOn;
  }
  return out;
}

function firstHashOn(policies: readonly HashPolicy[]): HashOn | undefined {
  for (const p of policies) {
    if (p.SourceIP) return 'source';
    if (p.Field === 'header' && p.FieldValue) return { header: p.FieldValue.toLowerCase() };
    if (p.Field === 'cookie' && p.FieldValue && !p.CookieConfig) return { cookie: p.FieldValue };
  }
  return undefined;
}

/** Hash policies the balancer cannot follow (for a warning at apply time). */
export function unsupportedHashPolicies(policies: readonly HashPolicy[]): HashPolicy[] {
  return policies.filter((p) => p.Field === 'query_parameter' || p.CookieConfig !== undefined);
}

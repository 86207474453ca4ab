/**
 * `service-resolver` write rules (Consul's `ServiceResolverConfigEntry.Validate`): subset names and
 * filters, `DefaultSubset`, `Redirect` xor `Failover`, failover shapes, timeouts and the
 * `LoadBalancer` combinations, with Consul's messages.
 */
import { compileBexpr } from './bexpr.js';
import { CONSUL_LB_POLICIES, type ServiceResolverEntry } from './entries.js';
import { checkDuration, checkTenancy, type EntryIssues } from './entry-issues.js';

const SUBSET_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** Record every problem of a resolver entry in `issues`. */
export function checkResolver(r: ServiceResolverEntry, label: string, issues: EntryIssues): void {
  const subsets = r.Subsets ?? {};
  for (const [name, subset] of Object.entries(subsets)) {
    const at = `Subsets[${JSON.stringify(name)}]`;
    if (!SUBSET_NAME.test(name) || name.length > 63) {
      issues.add(
        label,
        at,
        'Subset defines invalid name: must be lowercase letters, digits and dashes, ≤ 63 characters',
        name,
      );
    }
    if (subset.Filter) {
      try {
        compileBexpr(subset.Filter);
      } catch (error) {
        const reason = (error as Error).message.replace(/^filter "(?:[^"\\]|\\.)*": /, '');
        issues.add(
          label,
          `${at}.Filter`,
          `Filter for subset "${name}" is not a valid expression: ${reason}`,
          subset.Filter,
        );
      }
    }
  }
  if (r.DefaultSubset && !Object.hasOwn(subsets, r.DefaultSubset)) {
    issues.add(label, 'DefaultSubset', `DefaultSubset "${r.DefaultSubset}" is not a valid subset`);
  }
  if (r.Redirect) {
    const rd = r.Redirect;
    checkTenancy(rd, label, 'Redirect.', issues);
    if (r.Failover && Object.keys(r.Failover).length > 0) {
      issues.add(label, 'Redirect', 'Redirect and Failover cannot both be set');
    }
    if (!rd.Service && !rd.ServiceSubset && !rd.Datacenter && !rd.Peer && !rd.Namespace && !rd.Partition) {
      issues.add(label, 'Redirect', 'Redirect is empty');
    } else if (!rd.Service) {
      // Consul's write rules (ServiceResolverConfigEntry.Validate): these name another service's.
      for (const k of ['ServiceSubset', 'Namespace', 'Partition'] as const)
        if (rd[k])
          issues.add(label, `Redirect.${k}`, `Redirect.${k} defined without Redirect.Service`, rd[k]);
    } else if (rd.Service === r.Name && rd.ServiceSubset && !Object.hasOwn(subsets, rd.ServiceSubset)) {
      issues.add(
        label,
        'Redirect.ServiceSubset',
        `Redirect.ServiceSubset "${rd.ServiceSubset}" is not a valid subset of "${rd.Service}"`,
        rd.ServiceSubset,
      );
    }
    if (rd.Peer) issues.add(label, 'Redirect.Peer', 'cluster peering is not supported', rd.Peer);
    if (rd.SamenessGroup)
      issues.add(label, 'Redirect.SamenessGroup', 'sameness groups are a Consul Enterprise feature');
  }
  for (const [key, f] of Object.entries(r.Failover ?? {})) {
    const at = `Failover[${JSON.stringify(key)}]`;
    if (key !== '*' && !Object.hasOwn(subsets, key))
      issues.add(label, at, `Bad Failover["${key}"]: not a valid subset`);
    const hasTargets = (f.Targets ?? []).length > 0;
    if (!f.Service && !f.ServiceSubset && !f.Namespace && !hasTargets && !(f.Datacenters ?? []).length) {
      issues.add(
        label,
        at,
        `Bad Failover["${key}"]: one of Service, ServiceSubset, Namespace, Targets, SamenessGroup, or Datacenters is required`,
      );
    }
    if (hasTargets && (f.Service || f.ServiceSubset || (f.Datacenters ?? []).length)) {
      issues.add(
        label,
        at,
        `Bad Failover["${key}"]: Targets cannot be set with Datacenters, Service or ServiceSubset`,
      );
    }
    checkTenancy(f, label, `${at}.`, issues);
    (f.Targets ?? []).forEach((t, j) => {
      checkTenancy(t, label, `${at}.Targets[${j}].`, issues);
      if (t.Peer) issues.add(label, `${at}.Targets[${j}].Peer`, 'cluster peering is not supported', t.Peer);
    });
    if (f.SamenessGroup)
      issues.add(label, `${at}.SamenessGroup`, 'sameness groups are a Consul Enterprise feature');
  }
  checkDuration(r.ConnectTimeout, label, 'ConnectTimeout', issues);
  checkDuration(r.RequestTimeout, label, 'RequestTimeout', issues);
  checkLoadBalancer(r, label, issues);
}

function checkLoadBalancer(r: ServiceResolverEntry, label: string, issues: EntryIssues): void {
  const lb = r.LoadBalancer;
  if (!lb) return;
  const policy = lb.Policy ?? '';
  if (!CONSUL_LB_POLICIES.includes(policy)) {
    issues.add(
      label,
      'LoadBalancer.Policy',
      `Bad LoadBalancer: unknown policy; one of ${CONSUL_LB_POLICIES.slice(1).join(', ')}`,
      policy,
    );
  }
  if (lb.LeastRequestConfig && policy !== 'least_request') {
    issues.add(
      label,
      'LoadBalancer.LeastRequestConfig',
      `Bad LoadBalancer: LeastRequestConfig specified for incompatible load balancing policy "${policy}"`,
    );
  }
  if (lb.RingHashConfig && policy !== 'ring_hash') {
    issues.add(
      label,
      'LoadBalancer.RingHashConfig',
      `Bad LoadBalancer: RingHashConfig specified for incompatible load balancing policy "${policy}"`,
    );
  }
  const ring = lb.RingHashConfig;
  if (ring?.MinimumRingSize && ring.MaximumRingSize && ring.MinimumRingSize > ring.MaximumRingSize) {
    issues.add(
      label,
      'LoadBalancer.RingHashConfig',
      'Bad LoadBalancer: MinimumRingSize must not exceed MaximumRingSize',
    );
  }
  (lb.HashPolicies ?? []).forEach((hp, i) => {
    const at = `LoadBalancer.HashPolicies[${i}]`;
    if (policy !== 'ring_hash' && policy !== 'maglev') {
      issues.add(label, at, `Bad LoadBalancer: HashPolicies specified for non-hash-based policy "${policy}"`);
    }
    if (hp.Field !== undefined && hp.Field !== '') {
      if (!['header', 'cookie', 'query_parameter'].includes(hp.Field)) {
        issues.add(
          label,
          `${at}.Field`,
          'Bad LoadBalancer: Field must be one of header, cookie, query_parameter',
          hp.Field,
        );
      }
      if (!hp.FieldValue)
        issues.add(
          label,
          `${at}.FieldValue`,
          `Bad LoadBalancer: field "${hp.Field}" was specified without a FieldValue`,
        );
      if (hp.SourceIP)
        issues.add(
          label,
          at,
          'Bad LoadBalancer: a single hash policy cannot hash both a source address and a "header"/"cookie"/"query_parameter"',
        );
    } else if (!hp.SourceIP) {
      issues.add(label, at, 'Bad LoadBalancer: hash policy requires either Field or SourceIP');
    }
    if (hp.CookieConfig && hp.Field !== 'cookie') {
      issues.add(
        label,
        `${at}.CookieConfig`,
        'Bad LoadBalancer: CookieConfig is only valid with Field "cookie"',
      );
    }
    checkDuration(hp.CookieConfig?.TTL, label, `${at}.CookieConfig.TTL`, issues);
  });
}

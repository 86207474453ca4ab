import {
  type Env,
  type EnvVarSpec,
  envString,
  Issues,
  isIPv4,
  isIPv6,
  isValidHost,
  parseBoolean,
  parseDuration,
  parseHostPort,
  parseInteger,
} from '@proxyless/core';
import type { DnsResolverOptions } from './resolver.js';
import { DNS_DEFAULTS, MAX_ATTEMPTS } from './resolver.js';
import { ambiguousIPv6 } from './servers.js';
import type { DnsServer } from './wire.js';

/** Variables the DNS registry reads. */
export const dnsEnvVars: readonly EnvVarSpec[] = Object.freeze([
  {
    name: 'MESH_DNS_SERVERS',
    type: 'ip[:port] list',
    defaultValue: 'the system resolvers',
    description:
      'DNS servers queried directly, in order (one that gave no answer is asked last for 30 s), e.g. `10.0.0.2:53,[fd00::2]:5353` (a bare IP means port 53; `::1:5353`, which could end in a port, must be bracketed). Setting it selects DNS discovery.',
  },
  {
    name: 'MESH_DNS_DOMAIN',
    type: 'name list',
    defaultValue: '—',
    description:
      'Domain suffixes answered through DNS, e.g. `svc.cluster.local`: the URL host `api.svc.cluster.local` is the service `api.svc.cluster.local`. The first one qualifies short names of `MESH_DNS_SERVICES`. Setting it selects DNS discovery.',
  },
  {
    name: 'MESH_DNS_SERVICES',
    type: 'name list',
    defaultValue: '—',
    description:
      'Host names answered through DNS whatever their domain; a name without a dot is qualified with the first `MESH_DNS_DOMAIN`. Setting it selects DNS discovery.',
  },
  {
    name: 'MESH_DNS_SRV',
    type: 'boolean, _service._proto or `name`',
    defaultValue: DNS_DEFAULTS.srv,
    description:
      'SRV lookup prefix (`_grpc._tcp`), `true` for `_http._tcp`, `name` for the SRV records of the name itself (Consul DNS: `web.service.consul`, each instance with its port), or `false` for A/AAAA only. Without SRV records the A/AAAA records of the name are used.',
  },
  {
    name: 'MESH_DNS_DEFAULT_PORT',
    type: 'integer 1..65535',
    defaultValue: String(DNS_DEFAULTS.defaultPort),
    description: 'Port of endpoints found through A/AAAA records.',
  },
  {
    name: 'MESH_DNS_MIN_REFRESH',
    type: 'duration',
    defaultValue: '5s',
    description: 'Shortest interval between refreshes of one service, whatever the TTL.',
  },
  {
    name: 'MESH_DNS_MAX_REFRESH',
    type: 'duration',
    defaultValue: '5m',
    description: 'Longest interval between refreshes of one service, whatever the TTL.',
  },
  {
    name: 'MESH_DNS_TIMEOUT',
    type: 'duration',
    defaultValue: '2s',
    description: 'Timeout of one query to one server (UDP, then TCP when the answer is truncated).',
  },
  {
    name: 'MESH_DNS_ATTEMPTS',
    type: `integer 1..${MAX_ATTEMPTS}`,
    defaultValue: String(DNS_DEFAULTS.attempts),
    description:
      "Rounds over the servers for one query, as resolv.conf's `attempts`: a query no server answered (a lost datagram, a timeout) is sent again before the lookup fails. A server that answered, SERVFAIL included, is not asked again in a later round.",
  },
]);

const SRV_PREFIX = /^_[a-z0-9][a-z0-9-]*\._[a-z0-9][a-z0-9-]*$/i;

function list(value: string): string[] {
  return value.split(',').map((p) => p.trim());
}

function names(env: Env, name: string, issues: Issues): string[] | undefined {
  const raw = envString(env, name);
  if (raw === undefined) return undefined;
  const out: string[] = [];
  list(raw).forEach((part, i) => {
    const n = part.replace(/^\./, '').replace(/\.$/, '').toLowerCase();
    if (n === '' || !isValidHost(n) || isIPv4(n) || isIPv6(n)) {
      issues.add(`${name}[${i}]`, 'a DNS name (comma-separated list)', part);
    } else out.push(n);
  });
  return out;
}

function servers(raw: string, issues: Issues): DnsServer[] {
  const out: DnsServer[] = [];
  list(raw).forEach((part, i) => {
    const field = `MESH_DNS_SERVERS[${i}]`;
    const ambiguous = ambiguousIPv6(part);
    if (ambiguous !== undefined) {
      issues.add(field, ambiguous, part);
      return;
    }
    if (isIPv4(part) || isIPv6(part)) {
      out.push({ address: part, port: 53 });
      return;
    }
    const hp = issues.try(() => parseHostPort(part, field));
    if (hp === undefined) return;
    if (!isIPv4(hp.address) && !isIPv6(hp.address)) {
      issues.add(field, 'an IP address with an optional port (ip:port, [v6]:port)', part);
      return;
    }
    out.push({ address: hp.address, port: hp.port });
  });
  return out;
}

/**
 * DNS resolver options from the environment, or `undefined` when DNS discovery is not selected
 * (`MESH_REGISTRY=dns`, `MESH_DNS_SERVERS`, `MESH_DNS_DOMAIN` or `MESH_DNS_SERVICES` selects it).
 * Every variable is checked before anything is returned.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` listing each bad variable with its value.
 */
export function dnsOptionsFromEnv(env: Env): DnsResolverOptions | undefined {
  const registry = envString(env, 'MESH_REGISTRY')?.toLowerCase();
  if (registry !== 'dns' && !dnsSelectedByEnv(env)) return undefined;
  const issues = new Issues();
  const options = readDnsEnv(env, issues);
  if (options.domains === undefined && options.services === undefined) {
    issues.add(
      'MESH_DNS_DOMAIN',
      'a domain (or MESH_DNS_SERVICES) naming what DNS discovery answers for',
      undefined,
    );
  }
  issues.throwIfAny('invalid DNS discovery environment');
  return options;
}

/**
 * Whether a variable that selects DNS discovery is set (`MESH_DNS_SERVERS`, `MESH_DNS_DOMAIN`,
 * `MESH_DNS_SERVICES`: set alone, the last one used to select nothing, silently).
 */
export function dnsSelectedByEnv(env: Env): boolean {
  return (
    envString(env, 'MESH_DNS_SERVERS') !== undefined ||
    envString(env, 'MESH_DNS_DOMAIN') !== undefined ||
    envString(env, 'MESH_DNS_SERVICES') !== undefined
  );
}

/**
 * Check every `MESH_DNS_*` variable, into `issues`, whether DNS discovery is selected or not: a bad
 * value is an error even while another registry is in use.
 */
export function checkDnsEnv(env: Env, issues: Issues): void {
  readDnsEnv(env, issues);
}

/** Every `MESH_DNS_*` variable read, each problem recorded in `issues`. */
function readDnsEnv(env: Env, issues: Issues): DnsResolverOptions {
  const rawServers = envString(env, 'MESH_DNS_SERVERS');
  const options: DnsResolverOptions = {};
  if (rawServers !== undefined) {
    const s = servers(rawServers, issues);
    if (s.length > 0) options.servers = s;
  }
  const domains = names(env, 'MESH_DNS_DOMAIN', issues);
  if (domains !== undefined) options.domains = domains;
  const services = names(env, 'MESH_DNS_SERVICES', issues);
  if (services !== undefined) options.services = services;
  const srv = envString(env, 'MESH_DNS_SRV');
  if (srv !== undefined) {
    if (SRV_PREFIX.test(srv)) options.srv = srv.toLowerCase();
    else if (srv.toLowerCase() === 'name') options.srv = 'name';
    else {
      const b = issues.try(() => parseBoolean(srv, 'MESH_DNS_SRV'));
      if (b !== undefined) options.srv = b;
      else {
        // Replace the boolean-only wording with the full expectation.
        issues.list.pop();
        issues.add('MESH_DNS_SRV', 'a boolean, an SRV prefix like _http._tcp, or name', srv);
      }
    }
  }
  const port = envString(env, 'MESH_DNS_DEFAULT_PORT');
  if (port !== undefined) {
    const p = issues.try(() => parseInteger(port, 'MESH_DNS_DEFAULT_PORT', { min: 1, max: 65535 }));
    if (p !== undefined) options.defaultPort = p;
  }
  const duration = (name: string, min: number): number | undefined => {
    const v = envString(env, name);
    return v === undefined ? undefined : issues.try(() => parseDuration(v, name, { min, max: 86_400_000 }));
  };
  const minRefresh = duration('MESH_DNS_MIN_REFRESH', 1);
  const maxRefresh = duration('MESH_DNS_MAX_REFRESH', 1);
  const timeout = duration('MESH_DNS_TIMEOUT', 1);
  if (minRefresh !== undefined) options.minRefreshMs = Math.round(minRefresh);
  if (maxRefresh !== undefined) options.maxRefreshMs = Math.round(maxRefresh);
  if (timeout !== undefined) options.timeoutMs = Math.round(timeout);
  const attempts = envString(env, 'MESH_DNS_ATTEMPTS');
  if (attempts !== undefined) {
    const n = issues.try(() => parseInteger(attempts, 'MESH_DNS_ATTEMPTS', { min: 1, max: MAX_ATTEMPTS }));
    if (n !== undefined) options.attempts = n;
  }
  const effMin = options.minRefreshMs ?? DNS_DEFAULTS.minRefreshMs;
  const effMax = options.maxRefreshMs ?? DNS_DEFAULTS.maxRefreshMs;
  if (effMin > effMax) {
    issues.add(
      minRefresh !== undefined ? 'MESH_DNS_MIN_REFRESH' : 'MESH_DNS_MAX_REFRESH',
      `a duration with MESH_DNS_MIN_REFRESH (${effMin}ms) ≤ MESH_DNS_MAX_REFRESH (${effMax}ms)`,
      minRefresh !== undefined
        ? envString(env, 'MESH_DNS_MIN_REFRESH')
        : envString(env, 'MESH_DNS_MAX_REFRESH'),
    );
  }
  return options;
}

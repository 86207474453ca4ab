import { accessSync, constants } from 'node:fs';
import { type Env, type EnvVarSpec, envString, Issues, parseDuration } from '@proxyless/core';
import {
  DEFAULT_ETCD_ENDPOINTS,
  DEFAULT_ETCD_PREFIX,
  type EtcdConnectionOptions,
  normalizeEtcdEndpoint,
  normalizePrefix,
  redactUserInfo,
} from './client.js';

/** What `etcdOptionsFromEnv` returns: connection options plus the key prefix and lease TTL. */
export interface EtcdEnvOptions extends EtcdConnectionOptions {
  endpoints: string[];
  prefix?: string;
  /**
   * The prefix of config entries (traffic management), `false` when they are not read from etcd
   * (`MESH_ETCD_CONFIG_PREFIX=off`). Unset: `/proxyless/config/`.
   */
  configPrefix?: string | false;
  suffix?: string;
  leaseTtlSeconds?: number;
}

/** Variables the etcd resolver and registrar read. */
export const etcdEnvVars: readonly EnvVarSpec[] = Object.freeze([
  {
    name: 'MESH_ETCD_ENDPOINTS',
    type: 'host:port or URL list',
    defaultValue: '`127.0.0.1:2379` (with `MESH_REGISTRY=etcd`)',
    description:
      'etcd client endpoints, comma-separated: `10.0.0.5:2379,10.0.0.6:2379` or `https://etcd-1:2379`. Setting it selects the etcd registry.',
  },
  {
    name: 'MESH_ETCD_PREFIX',
    type: 'string',
    defaultValue: `\`${DEFAULT_ETCD_PREFIX}\``,
    description:
      'Key prefix; an endpoint of service `s` with id `i` is stored at `<prefix>s/i` as a JSON endpoint object.',
  },
  {
    name: 'MESH_ETCD_CONFIG_PREFIX',
    type: 'string or `off`',
    defaultValue: '`/proxyless/config/`',
    description:
      'Key prefix of the config entries (traffic management: `<prefix><kind>/<name>`), listed and watched as one document. `off` reads none from etcd: for a user whose role may read only the service keys, or a mesh that takes its routing from the config file alone.',
  },
  {
    name: 'MESH_ETCD_SUFFIX',
    type: 'DNS suffix',
    defaultValue: '—',
    description:
      'Host names `<service>.<suffix>` are answered from etcd as service `<service>` (besides bare single-label names such as `payments`).',
  },
  {
    name: 'MESH_ETCD_USERNAME',
    type: 'string',
    defaultValue: '—',
    description: 'etcd user name (with `MESH_ETCD_PASSWORD`).',
  },
  {
    name: 'MESH_ETCD_PASSWORD',
    type: 'string',
    defaultValue: '—',
    description: 'etcd password (with `MESH_ETCD_USERNAME`).',
  },
  {
    name: 'MESH_ETCD_CACERT',
    type: 'file path',
    defaultValue: '—',
    description: 'PEM CA bundle; turns TLS on (`host:port` endpoints use https).',
  },
  {
    name: 'MESH_ETCD_CERT',
    type: 'file path',
    defaultValue: '—',
    description: 'PEM client certificate for mutual TLS (with `MESH_ETCD_KEY`).',
  },
  {
    name: 'MESH_ETCD_KEY',
    type: 'file path',
    defaultValue: '—',
    description: 'PEM private key of `MESH_ETCD_CERT`.',
  },
  {
    name: 'MESH_ETCD_LEASE_TTL',
    type: 'duration ≥ 1s',
    defaultValue: '`10s`',
    description:
      'TTL of the lease a registered instance is written under (kept alive every TTL/3; rounded up to whole seconds). A dead process disappears after it.',
  },
]);

/**
 * etcd settings from the environment, or `undefined` when etcd is not selected (neither
 * `MESH_REGISTRY=etcd` nor `MESH_ETCD_ENDPOINTS`, or `MESH_REGISTRY` names another registry).
 *
 * @throws MeshError `MESH_CONFIG_INVALID` listing every bad variable with its value.
 */
export function etcdOptionsFromEnv(env: Env): EtcdEnvOptions | undefined {
  const registry = envString(env, 'MESH_REGISTRY')?.toLowerCase();
  if (registry !== undefined && registry !== 'etcd') return undefined;
  if (registry === undefined && envString(env, 'MESH_ETCD_ENDPOINTS') === undefined) return undefined;
  const issues = new Issues();
  const out = readEtcdEnv(env, issues);
  issues.throwIfAny('etcd environment');
  return out;
}

/**
 * Check every `MESH_ETCD_*` variable, into `issues`, whether etcd is selected or not: a bad value
 * is an error even while another registry is in use.
 */
export function checkEtcdEnv(env: Env, issues: Issues): void {
  readEtcdEnv(env, issues);
}

/** Every `MESH_ETCD_*` variable read, each problem recorded in `issues`. */
function readEtcdEnv(env: Env, issues: Issues): EtcdEnvOptions {
  const rawEndpoints = envString(env, 'MESH_ETCD_ENDPOINTS');
  const caCert = file(env, 'MESH_ETCD_CACERT', issues);
  const cert = file(env, 'MESH_ETCD_CERT', issues);
  const key = file(env, 'MESH_ETCD_KEY', issues);
  const tls = caCert !== undefined || cert !== undefined;

  const endpoints: string[] = [];
  if (rawEndpoints !== undefined) {
    const parts = rawEndpoints.split(',').map((p) => p.trim());
    if (parts.some((p) => p === '')) {
      issues.add(
        'MESH_ETCD_ENDPOINTS',
        'a comma-separated list of host:port or http(s):// URLs with no empty items',
        rawEndpoints,
      );
    } else {
      const schemes = new Set<string>();
      for (const p of parts) {
        try {
          const host = normalizeEtcdEndpoint(p, tls, 'MESH_ETCD_ENDPOINTS');
          schemes.add(host.slice(0, host.indexOf(':')));
          endpoints.push(p);
        } catch {
          issues.add(
            'MESH_ETCD_ENDPOINTS',
            `a comma-separated list of host:port or http(s)://host:port, no user info or path (bad item ${JSON.stringify(redactUserInfo(p))})`,
            redactUserInfo(rawEndpoints),
          );
        }
      }
      if (schemes.size > 1)
        issues.add(
          'MESH_ETCD_ENDPOINTS',
          'one scheme for every endpoint (all http:// or all https://)',
          rawEndpoints,
        );
    }
  } else {
    endpoints.push(...DEFAULT_ETCD_ENDPOINTS);
  }

  const prefix = envString(env, 'MESH_ETCD_PREFIX');
  if (prefix !== undefined && hasSpaceOrControl(prefix))
    issues.add('MESH_ETCD_PREFIX', 'a key prefix without spaces or control characters', env.MESH_ETCD_PREFIX);

  let configPrefix: string | false | undefined;
  const rawConfig = envString(env, 'MESH_ETCD_CONFIG_PREFIX');
  if (rawConfig !== undefined) {
    if (rawConfig.toLowerCase() === 'off') configPrefix = false;
    else if (hasSpaceOrControl(rawConfig))
      issues.add(
        'MESH_ETCD_CONFIG_PREFIX',
        'a key prefix without spaces or control characters, or off',
        env.MESH_ETCD_CONFIG_PREFIX,
      );
    else {
      const config = normalizePrefix(rawConfig);
      const services = normalizePrefix(prefix);
      if (config.startsWith(services) || services.startsWith(config))
        issues.add(
          'MESH_ETCD_CONFIG_PREFIX',
          `a key prefix apart from the service keys' ${JSON.stringify(services)} (neither inside the other)`,
          rawConfig,
        );
      else configPrefix = config;
    }
  }

  const suffix = envString(env, 'MESH_ETCD_SUFFIX')?.toLowerCase().replace(/^\.+/, '');
  if (
    suffix !== undefined &&
    !suffix.split('.').every((l) => /^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$/.test(l))
  )
    issues.add('MESH_ETCD_SUFFIX', 'a DNS suffix such as svc.etcd', env.MESH_ETCD_SUFFIX);

  const username = envString(env, 'MESH_ETCD_USERNAME');
  const password =
    env.MESH_ETCD_PASSWORD !== undefined && env.MESH_ETCD_PASSWORD !== ''
      ? env.MESH_ETCD_PASSWORD
      : undefined;
  if (username !== undefined && password === undefined)
    issues.add('MESH_ETCD_PASSWORD', 'a password when MESH_ETCD_USERNAME is set', env.MESH_ETCD_PASSWORD);
  if (username === undefined && password !== undefined)
    issues.add('MESH_ETCD_USERNAME', 'a user name when MESH_ETCD_PASSWORD is set', env.MESH_ETCD_USERNAME);

  if (cert !== undefined && key === undefined && env.MESH_ETCD_KEY === undefined)
    issues.add('MESH_ETCD_KEY', 'a key file when MESH_ETCD_CERT is set', env.MESH_ETCD_KEY);
  if (key !== undefined && cert === undefined && env.MESH_ETCD_CERT === undefined)
    issues.add('MESH_ETCD_CERT', 'a certificate file when MESH_ETCD_KEY is set', env.MESH_ETCD_CERT);

  let leaseTtlSeconds: number | undefined;
  const ttl = envString(env, 'MESH_ETCD_LEASE_TTL');
  if (ttl !== undefined) {
    const ms = issues.try(() => parseDuration(ttl, 'MESH_ETCD_LEASE_TTL', { min: 1000, max: 86_400_000 }));
    if (ms !== undefined) leaseTtlSeconds = Math.ceil(ms / 1000);
  }

  const out: EtcdEnvOptions = { endpoints };
  if (prefix !== undefined) out.prefix = prefix;
  if (configPrefix !== undefined) out.configPrefix = configPrefix;
  if (suffix !== undefined) out.suffix = suffix;
  if (username !== undefined && password !== undefined) {
    out.username = username;
    out.password = password;
  }
  if (caCert !== undefined) out.caCert = caCert;
  if (cert !== undefined) out.cert = cert;
  if (key !== undefined) out.key = key;
  if (leaseTtlSeconds !== undefined) out.leaseTtlSeconds = leaseTtlSeconds;
  return out;
}

function file(env: Env, name: string, issues: Issues): string | undefined {
  const path = envString(env, name);
  if (path === undefined) return undefined;
  try {
    accessSync(path, constants.R_OK);
    return path;
  } catch {
    issues.add(name, 'a readable PEM file', path);
    return undefined;
  }
}

function hasSpaceOrControl(s: string): boolean {
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (c < 0x20 || c === 0x7f || /\s/.test(ch)) return true;
  }
  return false;
}

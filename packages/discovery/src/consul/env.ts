/**
 * Consul settings from the environment, with the variable names the Consul CLI and Go client
 * use (`CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`, …) plus the mesh's own `MESH_CONSUL_*`.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { type Env, type EnvVarSpec, envString, Issues, parseBoolean } from '@proxyless/core';
import { parseConsulAddress } from './http.js';
import type { ConsulResolverOptions } from './resolver.js';

/** Every variable {@link consulOptionsFromEnv} reads. */
export const consulEnvVars: readonly EnvVarSpec[] = Object.freeze([
  {
    name: 'CONSUL_HTTP_ADDR',
    type: 'address',
    defaultValue: '127.0.0.1:8500',
    description:
      'Consul agent HTTP address: `host:port`, `http://host:port[/prefix]`, `https://host:port` (forces TLS) or `unix:///path/to/socket`. Setting it enables the Consul registry.',
  },
  {
    name: 'CONSUL_HTTP_TOKEN',
    type: 'string',
    defaultValue: '—',
    description: 'ACL token sent as `X-Consul-Token`.',
  },
  {
    name: 'CONSUL_HTTP_TOKEN_FILE',
    type: 'file path',
    defaultValue: '—',
    description:
      'File holding the ACL token (read once at start, trimmed); wins over `CONSUL_HTTP_TOKEN` unless empty.',
  },
  {
    name: 'CONSUL_HTTP_AUTH',
    type: 'user[:password]',
    defaultValue: '—',
    description: 'HTTP basic auth sent to the agent address (a proxy in front of Consul).',
  },
  {
    name: 'CONSUL_HTTP_SSL',
    type: 'boolean',
    defaultValue: 'false',
    description:
      "`true` (or `1`, `t`, `TRUE`, as Go reads it) uses HTTPS even for a `host:port` or `http://` address. A word Go does not read (`yes`, `on`) is an error: Consul's own client would ignore it.",
  },
  {
    name: 'CONSUL_HTTP_SSL_VERIFY',
    type: 'boolean',
    defaultValue: 'true',
    description: '`false` (or `0`, `f`, `FALSE`) skips verification of the agent certificate (testing only).',
  },
  {
    name: 'CONSUL_CACERT',
    type: 'file path',
    defaultValue: 'system CAs',
    description: 'PEM file of the CA that signed the agent certificate.',
  },
  {
    name: 'CONSUL_CAPATH',
    type: 'directory path',
    defaultValue: '—',
    description: 'Directory of PEM CA files trusted for the agent certificate (with `CONSUL_CACERT`).',
  },
  {
    name: 'CONSUL_CLIENT_CERT',
    type: 'file path',
    defaultValue: '—',
    description: 'PEM client certificate for mutual TLS; needs `CONSUL_CLIENT_KEY`.',
  },
  {
    name: 'CONSUL_CLIENT_KEY',
    type: 'file path',
    defaultValue: '—',
    description: 'PEM private key of `CONSUL_CLIENT_CERT`; needs `CONSUL_CLIENT_CERT`.',
  },
  {
    name: 'CONSUL_TLS_SERVER_NAME',
    type: 'host name',
    defaultValue: 'host of the address',
    description: 'Server name for SNI and certificate verification (a `:port` suffix is ignored).',
  },
  {
    name: 'CONSUL_NAMESPACE',
    type: 'string',
    defaultValue: '—',
    description:
      'Consul Enterprise namespace (`?ns=` on every request, registration included). On Consul CE the first request fails with `MESH_CONFIG_INVALID`.',
  },
  {
    name: 'CONSUL_PARTITION',
    type: 'string',
    defaultValue: '—',
    description:
      'Consul Enterprise admin partition (`?partition=` on every request). On Consul CE the first request fails with `MESH_CONFIG_INVALID`.',
  },
  {
    name: 'MESH_CONSUL_DATACENTER',
    type: 'string',
    defaultValue: "the agent's",
    description:
      'Datacenter to resolve services in (`?dc=`); also accepted in `<name>.service.<dc>.consul` host names.',
  },
  {
    name: 'MESH_CONSUL_ONLY_PASSING',
    type: 'boolean',
    defaultValue: 'false',
    description:
      '`true` uses only instances whose every check passes; by default `warning` instances are used too, with their `Weights.Warning`.',
  },
  {
    name: 'MESH_CONSUL_TAG',
    type: 'string',
    defaultValue: '—',
    description: 'Use only instances carrying this tag.',
  },
  {
    name: 'MESH_CONSUL_ZONE_KEY',
    type: 'string',
    defaultValue: 'zone',
    description: 'Service or node meta key holding the instance zone (service meta wins).',
  },
]);

const DC = /^[A-Za-z0-9_-]+$/;

/** `strconv.ParseBool`'s forms. */
const GO_BOOL: Readonly<Record<string, boolean>> = {
  '1': true,
  t: true,
  T: true,
  TRUE: true,
  true: true,
  True: true,
  '0': false,
  f: false,
  F: false,
  FALSE: false,
  false: false,
  False: false,
};
const META_KEY = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Resolver options from the environment, or `undefined` when neither `CONSUL_HTTP_ADDR` is set
 * nor `MESH_REGISTRY=consul` (then the default address `127.0.0.1:8500` is used).
 *
 * @throws MeshError `MESH_CONFIG_INVALID` listing every bad variable by name and value.
 */
export function consulOptionsFromEnv(env: Env): ConsulResolverOptions | undefined {
  const addr = envString(env, 'CONSUL_HTTP_ADDR');
  const registry = envString(env, 'MESH_REGISTRY')?.toLowerCase();
  if (addr === undefined && registry !== 'consul') return undefined;

  const issues = new Issues();
  const out: ConsulResolverOptions = {};
  const bool = (name: string): boolean | undefined => {
    const v = envString(env, name);
    if (v === undefined) return undefined;
    // The Go client reads CONSUL_* booleans with strconv.ParseBool (`t`, `F`, `TRUE`, …) and
    // ignores any other value with a warning: `yes` or `on`, which it reads as unset, is an error
    // here, so the mesh and the `consul` CLI never read one variable two ways.
    if (GO_BOOL[v] !== undefined) return GO_BOOL[v];
    return issues.add(
      name,
      'a boolean as Consul reads it (strconv.ParseBool: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False)',
      v,
    );
  };
  const file = (name: string): string | undefined => {
    const v = envString(env, name);
    if (v === undefined) return undefined;
    if (!existsSync(v)) return issues.add(name, 'the path of a readable file', v);
    return v;
  };

  const https = bool('CONSUL_HTTP_SSL');
  const verify = bool('CONSUL_HTTP_SSL_VERIFY');
  const address = addr ?? '127.0.0.1:8500';
  const target = issues.try(() => parseConsulAddress(address, https ?? false, 'CONSUL_HTTP_ADDR'));
  if (target) {
    out.address = address;
    if (https) out.https = true;
  }

  // As the Go client: the file wins when it holds a token; an empty file leaves CONSUL_HTTP_TOKEN.
  const envToken = envString(env, 'CONSUL_HTTP_TOKEN');
  if (envToken !== undefined) out.token = envToken;
  const tokenFile = envString(env, 'CONSUL_HTTP_TOKEN_FILE');
  if (tokenFile !== undefined) {
    try {
      const token = readFileSync(tokenFile, 'utf8').trim();
      if (token !== '') out.token = token;
    } catch (error) {
      issues.add(
        'CONSUL_HTTP_TOKEN_FILE',
        `a readable file (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
        tokenFile,
      );
    }
  }
  const auth = envString(env, 'CONSUL_HTTP_AUTH');
  if (auth !== undefined) {
    const colon = auth.indexOf(':');
    out.basicAuth =
      colon < 0 ? { username: auth } : { username: auth.slice(0, colon), password: auth.slice(colon + 1) };
  }

  const caFile = file('CONSUL_CACERT');
  const capath = envString(env, 'CONSUL_CAPATH');
  let caPath: string | undefined;
  if (capath !== undefined) {
    if (!existsSync(capath) || !statSync(capath).isDirectory())
      issues.add('CONSUL_CAPATH', 'the path of a directory of PEM CA files', capath);
    else caPath = capath;
  }
  const certFile = file('CONSUL_CLIENT_CERT');
  const keyFile = file('CONSUL_CLIENT_KEY');
  const certSet = envString(env, 'CONSUL_CLIENT_CERT') !== undefined;
  const keySet = envString(env, 'CONSUL_CLIENT_KEY') !== undefined;
  if (certSet !== keySet) {
    const [name, other] = certSet
      ? ['CONSUL_CLIENT_KEY', 'CONSUL_CLIENT_CERT']
      : ['CONSUL_CLIENT_CERT', 'CONSUL_CLIENT_KEY'];
    issues.add(
      name,
      `to be set together with ${other} (both client cert and client key must be provided)`,
      env[name],
    );
  }
  const serverName = envString(env, 'CONSUL_TLS_SERVER_NAME');
  if (serverName !== undefined && !/^[A-Za-z0-9.-]+(:\d+)?$/.test(serverName))
    issues.add('CONSUL_TLS_SERVER_NAME', 'a host name', serverName);
  const tls = {
    ...(caFile ? { caFile } : {}),
    ...(caPath ? { caPath } : {}),
    ...(certFile ? { certFile } : {}),
    ...(keyFile ? { keyFile } : {}),
    ...(serverName ? { serverName: serverName.replace(/:\d+$/, '') } : {}),
    ...(verify === false ? { verify: false } : {}),
  };
  if (Object.keys(tls).length) out.tls = tls;

  const ns = envString(env, 'CONSUL_NAMESPACE');
  if (ns !== undefined) {
    if (!DC.test(ns)) issues.add('CONSUL_NAMESPACE', 'a namespace name (letters, digits, - and _)', ns);
    else out.namespace = ns;
  }
  const partition = envString(env, 'CONSUL_PARTITION');
  if (partition !== undefined) {
    if (!DC.test(partition))
      issues.add('CONSUL_PARTITION', 'a partition name (letters, digits, - and _)', partition);
    else out.partition = partition;
  }
  readConsulMeshEnv(env, issues, out);
  issues.throwIfAny('invalid Consul environment');
  return out;
}

/**
 * Check every `MESH_CONSUL_*` variable, into `issues`, whether Consul is selected or not: a bad
 * value is an error even while another registry is in use. (`CONSUL_*` variables belong to
 * Consul's own tools too, and are checked only when the mesh uses Consul.)
 */
export function checkConsulEnv(env: Env, issues: Issues): void {
  readConsulMeshEnv(env, issues, {});
}

/** The mesh's own `MESH_CONSUL_*` variables, into `out`; each problem recorded in `issues`. */
function readConsulMeshEnv(env: Env, issues: Issues, out: ConsulResolverOptions): void {
  const dc = envString(env, 'MESH_CONSUL_DATACENTER');
  if (dc !== undefined) {
    if (!DC.test(dc))
      issues.add('MESH_CONSUL_DATACENTER', 'a datacenter name (letters, digits, - and _)', dc);
    else out.datacenter = dc;
  }
  const passing = envString(env, 'MESH_CONSUL_ONLY_PASSING');
  const onlyPassing =
    passing === undefined ? undefined : issues.try(() => parseBoolean(passing, 'MESH_CONSUL_ONLY_PASSING'));
  if (onlyPassing !== undefined) out.onlyPassing = onlyPassing;
  const tag = envString(env, 'MESH_CONSUL_TAG');
  if (tag !== undefined) {
    if (/[\s,]/.test(tag)) issues.add('MESH_CONSUL_TAG', 'one tag without spaces or commas', tag);
    else out.tag = tag;
  }
  const zoneKey = envString(env, 'MESH_CONSUL_ZONE_KEY');
  if (zoneKey !== undefined) {
    if (!META_KEY.test(zoneKey))
      issues.add('MESH_CONSUL_ZONE_KEY', 'a meta key (letters, digits, - and _, ≤ 128)', zoneKey);
    else out.zoneMetaKey = zoneKey;
  }
}

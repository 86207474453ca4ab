/**
 * Names in URLs and origins, as the mesh reads them on every call: the service an origin names,
 * the logical `Host` header, and the origin and path of a `mesh.request` URL.
 */
import { MeshError } from '@proxyless/core';

/** Origin and path of a request, as undici's `request()` passes them to `dispatch`. */
export interface RequestTarget {
  readonly origin: string;
  readonly path: string;
}

const targets = new Map<string, RequestTarget>();

/**
 * Origin and path of a `mesh.request` URL, as undici's `request(url)` reads them (`util.parseURL`),
 * for http(s) URLs; anything else is undefined, and takes undici's own path, which raises its own
 * errors. String URLs are remembered (a table emptied when full: a service calls the same few URLs
 * again and again) and split without a `URL` object where {@link splitUrl} can.
 */
export function requestTarget(url: string | URL): RequestTarget | undefined {
  if (typeof url === 'string') {
    const known = targets.get(url);
    if (known !== undefined) return known;
    let t: RequestTarget;
    const fast = splitUrl(url);
    if (fast !== undefined) t = { origin: fast.origin, path: `${fast.pathname}${fast.search}` };
    else {
      if (!url.startsWith('http://') && !url.startsWith('https://')) return undefined;
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        return undefined;
      }
      t = { origin: u.origin, path: u.search ? `${u.pathname}${u.search}` : u.pathname };
    }
    if (targets.size >= 256) targets.clear();
    targets.set(url, t);
    return t;
  }
  if (url instanceof URL && (url.protocol === 'http:' || url.protocol === 'https:')) {
    return { origin: url.origin, path: url.search ? `${url.pathname}${url.search}` : url.pathname };
  }
  return undefined;
}

export interface UrlParts {
  origin: string;
  hostname: string;
  pathname: string;
  search: string;
}

/**
 * The hot-path split of a plain `http(s)://host[:port]/path?query` URL, without allocating a
 * `URL`. Anything unusual (credentials, IPv6 literals, non-ASCII or upper-case hosts, dot segments,
 * escapes) returns `undefined` and goes through the WHATWG parser.
 */
export function splitUrl(url: string): UrlParts | undefined {
  const start = url.startsWith('http://') ? 7 : url.startsWith('https://') ? 8 : -1;
  if (start < 0) return undefined;
  let end = start;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */) break;
    const ok = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 58 || c === 95;
    if (!ok) return undefined; // upper case, @, [, %, non-ASCII, …
    end++;
  }
  const authority = url.slice(start, end);
  if (authority.length === 0) return undefined;
  const colon = authority.indexOf(':');
  const hostname = colon < 0 ? authority : authority.slice(0, colon);
  // A host whose last label is numeric is an IPv4 address to the WHATWG parser (`0` → `0.0.0.0`).
  const lastLabel = hostname.slice(hostname.lastIndexOf('.', hostname.length - 2) + 1).replace(/\.$/, '');
  if (lastLabel === '' || /^(0x[0-9a-f]*|[0-9]+)$/.test(lastLabel)) return undefined;
  // A punycode label (`xn--…`): the WHATWG parser decodes and checks it, and refuses a bad one.
  if (hostname.includes('xn--')) return undefined;
  if (colon >= 0) {
    const port = authority.slice(colon + 1);
    // Default ports are dropped by the WHATWG parser; let it handle those and odd ones.
    if (!/^[1-9][0-9]{0,4}$/.test(port) || port === '80' || port === '443' || Number(port) > 65535)
      return undefined;
  }
  let rest = url.slice(end);
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  // Only characters the WHATWG parser leaves as they are; no dot segments.
  if (!/^[A-Za-z0-9\-._~!$&()*+,;=:@/?]*$/.test(rest) || /\/\.\.?(\/|$|\?)/.test(rest)) return undefined;
  const q = rest.indexOf('?');
  const pathname = q < 0 ? rest || '/' : rest.slice(0, q) || '/';
  const search = q < 0 || q === rest.length - 1 ? '' : rest.slice(q);
  return { origin: url.slice(0, end), hostname, pathname, search };
}

/**
 * The Host header for an origin (`http://api:8080` → `api:8080`), remembered per origin. As undici
 * sends it: its origin goes through the WHATWG URL parser, whose `host` is the host name
 * lower-cased, with the port unless it is the scheme's default (`http://API:80` → `api`), and
 * without credentials (`http://user:secret@api` → `api`) or anything after the authority.
 */
const hosts = new Map<string, string>();
export function hostOf(origin: string): string {
  let host = hosts.get(origin);
  if (host === undefined) {
    host = urlHost(origin) ?? origin.slice(origin.indexOf('://') + 3).toLowerCase();
    if (hosts.size >= 1024) hosts.clear();
    hosts.set(origin, host);
  }
  return host;
}

function urlHost(origin: string): string | undefined {
  try {
    return new URL(origin).host || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The TLS server name undici derives from a `Host` header value (its `getServerName`): the host
 * name without port or brackets, or `undefined` for an IP literal (undici then uses none). Given
 * to undici with the logical `Host` the mesh adds, so that undici need not test the name against
 * its IP patterns on every request; remembered per host.
 */
const serverNames = new Map<string, string | undefined>();
export function serverNameOf(host: string): string | undefined {
  let name = serverNames.get(host);
  if (name === undefined && !serverNames.has(host)) {
    const bracket = host[0] === '[' ? host.indexOf(']') : -1;
    const colon = host.indexOf(':');
    const bare = bracket > 0 ? host.slice(1, bracket) : colon >= 0 ? host.slice(0, colon) : host;
    // `node:net` when first needed (at the first call): undici loads it then too.
    name = bare === '' || process.getBuiltinModule('node:net').isIP(bare) !== 0 ? undefined : bare;
    if (serverNames.size >= 1024) serverNames.clear();
    serverNames.set(host, name);
  }
  return name;
}

/** The host name of an origin, lower-cased (an IPv6 literal keeps its brackets). */
export function hostnameOf(origin: string): string | undefined {
  const i = origin.indexOf('://');
  if (i < 0) return undefined;
  let rest = origin.slice(i + 3);
  const slash = rest.indexOf('/');
  if (slash >= 0) rest = rest.slice(0, slash);
  const at = rest.lastIndexOf('@');
  if (at >= 0) rest = rest.slice(at + 1);
  if (rest.startsWith('[')) return rest.slice(0, rest.indexOf(']') + 1);
  const colon = rest.indexOf(':');
  return (colon >= 0 ? rest.slice(0, colon) : rest).toLowerCase();
}

/** The error for an origin that names no mesh service while pass-through is off. */
export function unknownService(origin: string): MeshError {
  return new MeshError(
    'MESH_UNKNOWN_SERVICE',
    `"${origin}" is not a mesh service and pass-through is disabled (MESH_PASSTHROUGH=false)`,
    {
      details: { field: 'MESH_PASSTHROUGH', value: origin },
    },
  );
}

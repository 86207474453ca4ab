import {
  canonicalAddress,
  configError,
  type EndpointHealth,
  type EndpointInit,
  formatHostPort,
  IPV4_SOURCE,
  type Issues,
  isValidHost,
  parseHostPort,
  parseNumber,
} from '@proxyless/core';

/** Keys an endpoint object may hold, in the config document and in registry values. */
export const ENDPOINT_KEYS: readonly string[] = Object.freeze([
  'id',
  'address',
  'port',
  'weight',
  'zone',
  'priority',
  'tags',
  'metadata',
  'health',
]);

/** The largest endpoint weight, in every form (`weight: n`, `host:port=n`). */
const MAX_WEIGHT = 1_000_000;

/** The highest endpoint priority level (an SRV record's priority is 16 bits). */
export const MAX_PRIORITY = 65_535;

const HEALTH: readonly EndpointHealth[] = ['passing', 'warning', 'critical'];

/** What an endpoint address must be, in error messages. */
export const ENDPOINT_ADDRESS_EXPECTED = 'an IPv4 or IPv6 address or a host name';

/**
 * Why an IPv6 literal with a zone id (`fe80::1%eth0`) is refused, or `undefined` for an address
 * without one (of an address `isValidHost` accepts: only an IPv6 literal can hold a `%`). The
 * WHATWG URL parser has no syntax for zone ids (`[fe80::1%eth0]` and `[fe80::1%25eth0]` are both
 * invalid URLs), so undici's URL-based pools cannot dial such an address: every request to it
 * would fail with `ERR_INVALID_URL`.
 */
export function zoneIdProblem(address: string): string | undefined {
  const at = address.indexOf('%');
  if (at < 0) return undefined;
  return `an IPv6 address without a zone id: an IPv6 address with a zone id (${address.slice(at)}) cannot be dialled by undici's URL-based pools`;
}

/**
 * The one rule for an endpoint address, wherever it comes from (the config document, code options,
 * `MESH_ENDPOINTS_*`, etcd values, Consul health entries, registrations): an IPv4 address, an
 * IPv6 address (bare, or in brackets as in URLs) without a zone id, or a host name
 * (`isValidHost`). Returns the address to dial (brackets removed), or what was expected.
 */
export function checkEndpointAddress(value: string): string | { expected: string } {
  // Accept a bracketed IPv6 literal as written in URLs; store it bare.
  const address = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
  if (!isValidHost(address)) return { expected: ENDPOINT_ADDRESS_EXPECTED };
  // `isValidHost` lets `%` through in IPv6 literals only (host names cannot hold it).
  const zone = zoneIdProblem(address);
  return zone === undefined ? canonicalAddress(address) : { expected: zone };
}

/**
 * Validate one endpoint object `{ address, port, weight?, zone?, priority?, tags?, metadata?, id?, health? }`.
 * Every problem is recorded under `field` (e.g. `services.payments.endpoints[2].port`); returns
 * `undefined` if there was any.
 */
export function parseEndpointEntry(value: unknown, field: string, issues: Issues): EndpointInit | undefined {
  const obj = issues.object(value, field);
  if (obj === undefined) return undefined;
  const before = issues.list.length;
  issues.unknownKeys(obj, field, ENDPOINT_KEYS);
  let address = issues.string(obj.address, `${field}.address`);
  if (address !== undefined) {
    const checked = checkEndpointAddress(address);
    if (typeof checked === 'string') address = checked;
    else {
      issues.add(`${field}.address`, checked.expected, obj.address);
      address = undefined;
    }
  }
  const port = issues.integer(obj.port, `${field}.port`, { min: 1, max: 65535 });
  const init: EndpointInit = { address: address ?? '', port: port ?? 0 };
  if (obj.id !== undefined) {
    const id = issues.string(obj.id, `${field}.id`);
    if (id !== undefined) init.id = id;
  }
  if (obj.weight !== undefined) {
    const weight = issues.number(obj.weight, `${field}.weight`, { min: 0, max: MAX_WEIGHT });
    if (weight !== undefined) init.weight = weight;
  }
  if (obj.zone !== undefined) {
    const zone = issues.string(obj.zone, `${field}.zone`);
    if (zone !== undefined) init.zone = zone;
  }
  if (obj.priority !== undefined) {
    const priority = issues.integer(obj.priority, `${field}.priority`, { min: 0, max: MAX_PRIORITY });
    if (priority !== undefined) init.priority = priority;
  }
  if (obj.tags !== undefined) {
    const tags = issues.stringArray(obj.tags, `${field}.tags`);
    if (tags !== undefined) init.tags = tags;
  }
  if (obj.metadata !== undefined) {
    const metadata = issues.stringRecord(obj.metadata, `${field}.metadata`);
    if (metadata !== undefined) init.metadata = metadata;
  }
  if (obj.health !== undefined) {
    const health = issues.oneOf(obj.health, `${field}.health`, HEALTH);
    if (health !== undefined) init.health = health;
  }
  return issues.list.length === before ? init : undefined;
}

/**
 * Validate an endpoint list: an array of endpoint objects, or a `host:port[=weight]` string list.
 * Duplicate `id`s (or `address:port` pairs) are an error.
 */
export function parseEndpointList(value: unknown, field: string, issues: Issues): EndpointInit[] | undefined {
  const before = issues.list.length;
  let out: EndpointInit[] = [];
  if (typeof value === 'string') {
    // `''` (or blanks) is the empty list, as `[]` is: a service with no endpoints (a templated
    // list that rendered empty), whose calls fail `MESH_NO_ENDPOINTS`.
    if (value.trim() !== '') out = issues.try(() => parseEndpointSpec(value, field)) ?? out;
  } else {
    const list = issues.array(value, field);
    if (list === undefined) return undefined;
    for (let i = 0; i < list.length; i++) {
      const entry = list[i];
      let e: EndpointInit | undefined;
      if (typeof entry !== 'string') e = parseEndpointEntry(entry, `${field}[${i}]`, issues);
      else if (entry.includes(',')) {
        // One endpoint per item: `['a:1,b:2']` would otherwise keep `a:1` and drop `b:2` unsaid.
        issues.add(`${field}[${i}]`, 'one host:port[=weight] per list item (no commas)', entry);
      } else e = issues.try(() => parseEndpointSpec(entry, `${field}[${i}]`))?.[0];
      if (e) out.push(e);
    }
  }
  if (issues.list.length !== before) return undefined;
  // Duplicates — the same `address:port` (an IPv6 address in its canonical text), or the same id
  // (given, or the default `address:port`) — named as the endpoint's id is written (`[::1]:8080`).
  // A list of one (the usual) needs no set.
  if (out.length > 1) {
    const ids = new Set<string>();
    const addresses = new Set<string>();
    for (let i = 0; i < out.length; i++) {
      const e = out[i] as EndpointInit;
      const address = formatHostPort(e.address, e.port);
      const id = e.id ?? address;
      const twice = ids.has(id) ? id : addresses.has(address) ? address : undefined;
      if (twice !== undefined)
        issues.add(`${field}[${i}]`, 'a unique endpoint (this one is listed twice)', twice);
      ids.add(id);
      addresses.add(address);
    }
  }
  return issues.list.length === before ? out : undefined;
}

/** `a.b.c.d:port[=weight]` with plain-digit port and weight (ranges are checked after the match). */
const IPV4_ENDPOINT = new RegExp(`^\\s*(${IPV4_SOURCE}):(\\d{1,5})(?:=(\\d{1,7}))?\\s*$`);

/**
 * `host:port[=weight][,host:port[=weight]…]`, IPv6 in brackets: `[::1]:8080=3`. Used by
 * `MESH_ENDPOINTS_<SERVICE>` and string endpoint lists in options.
 */
export function parseEndpointSpec(value: string, field: string): EndpointInit[] {
  const items = value.split(',');
  const out: EndpointInit[] = [];
  for (let i = 0; i < items.length; i++) {
    const raw = items[i] as string;
    // The common form, `a.b.c.d:port` or `a.b.c.d:port=weight` in plain digits, in one native
    // match: a config document lists thousands of them. Anything else takes the general path.
    const m = IPV4_ENDPOINT.exec(raw);
    if (m !== null) {
      const port = Number(m[2]);
      const weight = m[3] === undefined ? undefined : Number(m[3]);
      if (port >= 1 && port <= 65535 && (weight === undefined || weight <= MAX_WEIGHT)) {
        out.push(
          weight === undefined
            ? { address: m[1] as string, port }
            : { address: m[1] as string, port, weight },
        );
        continue;
      }
    }
    const item = raw.trim();
    if (item === '')
      throw configError(field, 'a comma-separated list of host:port[=weight] with no empty items', value);
    const eq = item.lastIndexOf('=');
    const hp = eq >= 0 ? item.slice(0, eq) : item;
    let weight: number | undefined;
    if (eq >= 0) {
      const w = item.slice(eq + 1);
      try {
        weight = parseNumber(w, field, { min: 0, max: MAX_WEIGHT });
      } catch {
        throw configError(
          field,
          `host:port=weight with a weight 0..${MAX_WEIGHT} (in ${JSON.stringify(item)})`,
          value,
        );
      }
    }
    let parsed: { address: string; port: number };
    try {
      parsed = parseHostPort(hp, field);
    } catch {
      throw configError(
        field,
        `a list of host:port[=weight] (IPv6 in brackets: [::1]:8080); bad item ${JSON.stringify(item)}`,
        value,
      );
    }
    // `[fe80::1%eth0]:80` is a host:port to `parseHostPort`, but no address undici can dial.
    const zone = zoneIdProblem(parsed.address);
    if (zone !== undefined) throw configError(field, `${zone}; bad item ${JSON.stringify(item)}`, value);
    const address = canonicalAddress(parsed.address);
    out.push(weight === undefined ? { address, port: parsed.port } : { address, port: parsed.port, weight });
  }
  return out;
}

/**
 * Consistent hashing: the request's hash key (call attribute, header, cookie or source address)
 * and the pickers that map it to an endpoint, `ring_hash` and `maglev`.
 */
import type { CallContext } from '@proxyless/core';
import type { HashOn } from './config.js';
import { HASH_OUT, hashInto, hashString } from './hash.js';
import type { PickerHost, StatePicker } from './picker-host.js';
import type { EndpointState } from './state.js';

/**
 * Hash the request's key into `HASH_OUT[0]`; false when it has none. The key is the `hashKey` call
 * attribute (string or number), else `hashOn` — a header, a cookie, or the source
 * (`sourceAddress` attribute, else the first `x-forwarded-for` entry, else `x-real-ip`).
 */
export function requestHash(ctx: CallContext, hashOn: HashOn | undefined): boolean {
  const attr = ctx.attributes.get('hashKey');
  if (typeof attr === 'string') {
    hashInto(attr, 0, attr.length, 0);
    return true;
  }
  if (typeof attr === 'number' && Number.isFinite(attr)) {
    // As its decimal string: `42` and `"42"` are the same key, however the call gave it.
    const s = String(attr);
    hashInto(s, 0, s.length, 0);
    return true;
  }
  if (hashOn === undefined) return false;
  const headers = ctx.request.headers;
  if (hashOn === 'source') {
    const src = ctx.attributes.get('sourceAddress');
    if (typeof src === 'string') return hashWhole(src);
    const xff = firstHeader(headers['x-forwarded-for']);
    if (xff !== undefined) {
      const comma = xff.indexOf(',');
      let end = comma < 0 ? xff.length : comma;
      let start = 0;
      while (start < end && xff.charCodeAt(start) === 32) start++;
      while (end > start && xff.charCodeAt(end - 1) === 32) end--;
      if (end > start) {
        hashInto(xff, start, end, 0);
        return true;
      }
    }
    const real = firstHeader(headers['x-real-ip']);
    return real === undefined ? false : hashWhole(real);
  }
  if ('header' in hashOn) {
    const v = firstHeader(headers[hashOn.header]);
    return v === undefined ? false : hashWhole(v);
  }
  const cookie = headers.cookie;
  if (typeof cookie === 'string') return cookieHash(cookie, hashOn.cookie);
  if (Array.isArray(cookie)) {
    for (const c of cookie) if (cookieHash(c, hashOn.cookie)) return true;
  }
  return false;
}

function hashWhole(s: string): boolean {
  hashInto(s, 0, s.length, 0);
  return true;
}

function firstHeader(v: string | string[] | undefined): string | undefined {
  if (typeof v === 'string') return v;
  return v?.[0];
}

/** Hash cookie `name`'s value in a `Cookie` header into `HASH_OUT[0]`; no substrings are made. */
function cookieHash(header: string, name: string): boolean {
  let i = 0;
  const len = header.length;
  while (i < len) {
    while (i < len && (header.charCodeAt(i) === 32 || header.charCodeAt(i) === 59)) i++;
    const end = header.indexOf(';', i);
    const stop = end < 0 ? len : end;
    if (header.startsWith(name, i) && header.charCodeAt(i + name.length) === 61) {
      let vs = i + name.length + 1;
      let ve = stop;
      while (ve > vs && header.charCodeAt(ve - 1) === 32) ve--;
      if (header.charCodeAt(vs) === 34 && ve - vs >= 2 && header.charCodeAt(ve - 1) === 34) {
        vs++;
        ve--;
      }
      hashInto(header, vs, ve, 0);
      return true;
    }
    i = stop + 1;
  }
  return false;
}

/**
 * Consistent hashing on a ring (Ketama-style, sized as Envoy's `RING_HASH`): each endpoint owns a
 * number of points proportional to its weight — the lightest a whole number, about `minRingSize`
 * points in all, at most `maxRingSize`, at least one per endpoint with a weight; a key goes to the
 * first point at or after its hash. O(log ring) per pick. Requests without a key go to a random
 * point.
 *
 * The ring is a function of the current endpoints and their weights alone (as Envoy's): every
 * client with the same endpoint set builds the same ring, whatever sets it saw before, so a key
 * goes to the same endpoint from every client of a fleet, restarted or not.
 */
export class RingHashPicker implements StatePicker {
  readonly #states: readonly EndpointState[];
  readonly #host: PickerHost;
  readonly #hashes: Uint32Array;
  readonly #owners: Int32Array;

  constructor(states: readonly EndpointState[], host: PickerHost) {
    this.#states = states;
    this.#host = host;
    const { minRingSize, maxRingSize } = host.config;
    const n = states.length;
    // Weights in units of the smallest positive weight (all 1 when no weight is positive).
    let minW = Number.POSITIVE_INFINITY;
    for (const s of states) if (s.weight > 0 && s.weight < minW) minW = s.weight;
    const uniform = minW === Number.POSITIVE_INFINITY;
    let units = 0;
    for (const s of states) units += uniform ? 1 : s.weight / minW;
    // Points per weight unit, as Envoy's scale: the lightest endpoint gets a whole number of points
    // and the ring at least `minRingSize` of them, unless that would pass `maxRingSize`. An
    // endpoint's points are a prefix of its replica sequence, so a membership change moves the
    // keys of the endpoint that came or went and of the points the others gain or give up.
    let base = Math.max(1, Math.ceil(minRingSize / units));
    if (units * base > maxRingSize) base = maxRingSize / units;
    const counts = new Int32Array(n);
    let size = 0;
    for (let i = 0; i < n; i++) {
      const w = (states[i] as EndpointState).weight;
      const unit = uniform ? 1 : w / minW;
      const c = uniform || w > 0 ? Math.max(1, Math.ceil(unit * base)) : 0;
      counts[i] = c;
      size += c;
    }
    // Pack (hash, owner) into one float so a numeric typed-array sort orders both.
    const packed = new Float64Array(size);
    let k = 0;
    for (let i = 0; i < n; i++) {
      const id = (states[i] as EndpointState).endpoint.id;
      const c = counts[i] as number;
      for (let r = 0; r < c; r++) packed[k++] = hashString(id, r + 1) * 2097152 + i;
    }
    packed.sort();
    this.#hashes = new Uint32Array(size);
    this.#owners = new Int32Array(size);
    for (let j = 0; j < size; j++) {
      const p = packed[j] as number;
      const owner = p % 2097152;
      this.#owners[j] = owner;
      this.#hashes[j] = (p - owner) / 2097152;
    }
  }

  /** Number of points on the ring. */
  get size(): number {
    return this.#hashes.length;
  }

  pick(ctx: CallContext): EndpointState {
    if (!requestHash(ctx, this.#host.config.hashOn)) {
      return this.#states[this.#owners[this.#host.ints.int(this.#owners.length)] as number] as EndpointState;
    }
    const h = HASH_OUT[0] as number;
    const hashes = this.#hashes;
    let lo = 0;
    let hi = hashes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((hashes[mid] as number) < h) lo = mid + 1;
      else hi = mid;
    }
    if (lo === hashes.length) lo = 0;
    return this.#states[this.#owners[lo] as number] as EndpointState;
  }
}

/**
 * Maglev consistent hashing (Google's Maglev paper, as Envoy's `MAGLEV`): a lookup table of
 * `tableSize` (prime) slots filled from per-endpoint permutations, weighted; O(1) per pick and
 * minimal disruption when membership changes. Requests without a key go to a random slot.
 */
export class MaglevPicker implements StatePicker {
  readonly #states: readonly EndpointState[];
  readonly #host: PickerHost;
  readonly #table: Int32Array;

  constructor(states: readonly EndpointState[], host: PickerHost) {
    this.#states = states;
    this.#host = host;
    const m = host.config.tableSize;
    const n = states.length;
    const table = new Int32Array(m).fill(-1);
    const pos = new Int32Array(n);
    const skip = new Int32Array(n);
    const weight = new Float64Array(n);
    const target = new Float64Array(n);
    let maxW = 0;
    for (let i = 0; i < n; i++) {
      const s = states[i] as EndpointState;
      pos[i] = hashString(s.endpoint.id, 0x51) % m;
      skip[i] = (hashString(s.endpoint.id, 0x77) % (m - 1)) + 1;
      weight[i] = s.endpoint.weight;
      maxW = Math.max(maxW, s.endpoint.weight);
    }
    if (maxW <= 0) {
      weight.fill(1);
      maxW = 1;
    }
    for (let i = 0; i < n; i++) weight[i] = (weight[i] as number) / maxW;
    // Endpoints take their turns in the order of their ids, not of the set's list: registries and
    // DNS return one set in varying orders, and every client of a fleet must build the same table
    // (Envoy sorts its hosts for this: envoyproxy/envoy#20703).
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => {
      const x = (states[a] as EndpointState).endpoint.id;
      const y = (states[b] as EndpointState).endpoint.id;
      return x < y ? -1 : x > y ? 1 : 0;
    });
    let filled = 0;
    const limit = Math.min(m, n > 0 ? m : 0);
    while (filled < limit) {
      for (let k = 0; k < n && filled < limit; k++) {
        const i = order[k] as number;
        const w = weight[i] as number;
        if (w <= 0) continue;
        target[i] = (target[i] as number) + w;
        if ((target[i] as number) < 1) continue;
        target[i] = (target[i] as number) - 1;
        // Walk this endpoint's permutation (offset + j × skip mod m) to its next free slot.
        let c = pos[i] as number;
        const step = skip[i] as number;
        while (table[c] !== -1) {
          c += step;
          if (c >= m) c -= m;
        }
        table[c] = i;
        c += step;
        pos[i] = c >= m ? c - m : c;
        filled++;
      }
    }
    this.#table = table;
  }

  pick(ctx: CallContext): EndpointState {
    const table = this.#table;
    const slot = requestHash(ctx, this.#host.config.hashOn)
      ? (HASH_OUT[0] as number) % table.length
      : this.#host.ints.int(table.length);
    return this.#states[table[slot] as number] as EndpointState;
  }
}

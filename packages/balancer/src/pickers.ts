import type { CallContext, Random } from '@proxyless/core';
import type { HashOn, LoadBalancerConfig, LoadBalancerPolicy } from './config.js';
import { HASH_OUT, hashInto, hashNumberInto, hashString } from './hash.js';
import type { EndpointState } from './state.js';

/**
 * xorshift32 with its state in a typed array, seeded once from the injected `Random`: integer
 * draws on the hot path without heap-allocated numbers. Deterministic when the seed source is.
 */
export class IntRandom {
  readonly #s = new Int32Array(1);
  constructor(seed: Random) {
    const v = Math.floor(seed.next() * 4294967296) | 0;
    this.#s[0] = v === 0 ? 0x2545f491 : v;
  }
  /** An integer in [0, n), for 1 ≤ n ≤ 2^31. */
  int(n: number): number {
    let x = this.#s[0] as number;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#s[0] = x;
    return (x >>> 0) % n;
  }
}

/** What a picker needs from its balancer. */
export interface PickerHost {
  readonly random: Random;
  /** Hot-path integer randomness, seeded from `random`. */
  readonly ints: IntRandom;
  /** `ring_hash` points per weight unit of the previous ring (0 before the first), kept for stability. */
  ringBase: number;
  readonly config: LoadBalancerConfig;
  now(): number;
  /**
   * The clock time of the latest attempt start/end or update: cheap to read (no clock call), used
   * to decay latency estimates on the pick path.
   */
  recentNow(): number;
  /** Weight after slow start (≥ 0). */
  effectiveWeight(state: EndpointState, now: number): number;
  /** Peak-EWMA latency of `state` decayed to `now`, ms (the default RTT when never measured). */
  latency(state: EndpointState, now: number): number;
}

/** A picker over a fixed, non-empty list of endpoint states. `pick` allocates nothing. */
export interface StatePicker {
  pick(ctx: CallContext): EndpointState;
}

/** Build the picker for `policy` over `states` (non-empty). */
export function buildPicker(
  policy: LoadBalancerPolicy,
  states: readonly EndpointState[],
  host: PickerHost,
): StatePicker {
  switch (policy) {
    case 'round_robin':
      return new RoundRobinPicker(states, host.random);
    case 'random':
      return new RandomPicker(states, host.ints);
    case 'weighted_round_robin':
      return new WeightedRoundRobinPicker(states, host);
    case 'least_request':
      return new P2CPicker(states, host, false);
    case 'peak_ewma':
      return new P2CPicker(states, host, true);
    case 'ring_hash':
      return new RingHashPicker(states, host);
    case 'maglev':
      return new MaglevPicker(states, host);
  }
}

/** Each endpoint in turn, starting at a random offset; weights are ignored. */
export class RoundRobinPicker implements StatePicker {
  readonly #states: readonly EndpointState[];
  #next: number;
  constructor(states: readonly EndpointState[], random: Random) {
    this.#states = states;
    this.#next = Math.floor(random.next() * states.length);
  }
  pick(): EndpointState {
    if (this.#next >= this.#states.length) this.#next = 0;
    return this.#states[this.#next++] as EndpointState;
  }
}

/** Uniformly random; weights are ignored. */
export class RandomPicker implements StatePicker {
  readonly #states: readonly EndpointState[];
  readonly #ints: IntRandom;
  constructor(states: readonly EndpointState[], ints: IntRandom) {
    this.#states = states;
    this.#ints = ints;
  }
  pick(): EndpointState {
    return this.#states[this.#ints.int(this.#states.length)] as EndpointState;
  }
}

/**
 * Smooth weighted round robin as an earliest-deadline-first schedule (Envoy's EDF): each endpoint
 * is due every `1 / weight`; the earliest due is picked and rescheduled. O(log n) per pick, exact
 * proportions, interleaved rather than bursty. Weights are re-read at every pick, so slow start
 * ramps apply. Endpoints of weight 0 are skipped unless every weight is 0 (then all count as 1).
 */
export class WeightedRoundRobinPicker implements StatePicker {
  readonly #states: readonly EndpointState[];
  readonly #host: PickerHost;
  /** Heap of endpoint positions, ordered by (deadline, position); `#keys` is in heap order too. */
  readonly #heap: Int32Array;
  readonly #keys: Float64Array;
  readonly #size: number;
  readonly #uniform: boolean;
  /** Without slow start, weights are fixed: their inverses are computed once. */
  readonly #step: Float64Array | undefined;

  constructor(states: readonly EndpointState[], host: PickerHost) {
    this.#states = states;
    this.#host = host;
    const n = states.length;
    const now = host.now();
    let positive = 0;
    for (const s of states) if (host.effectiveWeight(s, now) > 0) positive++;
    this.#uniform = positive === 0;
    const size = this.#uniform ? n : positive;
    this.#heap = new Int32Array(size);
    this.#keys = new Float64Array(size);
    this.#step = host.config.slowStart ? undefined : new Float64Array(n);
    let k = 0;
    for (let i = 0; i < n; i++) {
      const w = this.#uniform ? 1 : host.effectiveWeight(states[i] as EndpointState, now);
      if (w <= 0) continue;
      if (this.#step) this.#step[i] = 1 / w;
      this.#heap[k] = i;
      this.#keys[k] = host.random.next() / w;
      k++;
    }
    this.#size = k;
    for (let i = (k >> 1) - 1; i >= 0; i--) this.#down(i, this.#heap[i] as number, this.#keys[i] as number);
  }

  /** Place (`item`, `key`) at or below slot `i`. */
  #down(i: number, item: number, key: number): void {
    const heap = this.#heap;
    const keys = this.#keys;
    const size = this.#size;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      let c = l;
      let ck = keys[l] as number;
      const r = l + 1;
      if (r < size) {
        const rk = keys[r] as number;
        if (rk < ck || (rk === ck && (heap[r] as number) < (heap[l] as number))) {
          c = r;
          ck = rk;
        }
      }
      if (ck > key || (ck === key && (heap[c] as number) > item)) break;
      heap[i] = heap[c] as number;
      keys[i] = ck;
      i = c;
    }
    heap[i] = item;
    keys[i] = key;
  }

  pick(): EndpointState {
    const top = this.#heap[0] as number;
    let step: number;
    if (this.#step) step = this.#step[top] as number;
    else {
      const w = this.#uniform
        ? 1
        : this.#host.effectiveWeight(this.#states[top] as EndpointState, this.#host.now());
      // Slow start has a floor above 0 unless configured to 0; never stall on a zero weight.
      step = 1 / (w > 0 ? w : 1e-9);
    }
    this.#down(0, top, (this.#keys[0] as number) + step);
    return this.#states[top] as EndpointState;
  }
}

/**
 * Power of `choiceCount` choices. `least_request`: cost = (in-flight + 1) / weight.
 * `peak_ewma` (Finagle/Linkerd): cost = peak-EWMA latency × (in-flight + 1) / weight, with the
 * default RTT for endpoints never measured. The cheapest candidate wins.
 */
export class P2CPicker implements StatePicker {
  readonly #states: readonly EndpointState[];
  readonly #host: PickerHost;
  readonly #ewma: boolean;
  readonly #choices: number;
  /** 0: no time needed; 1: the recent time is enough (EWMA decay); 2: read the clock (slow start). */
  readonly #timeMode: number;

  constructor(states: readonly EndpointState[], host: PickerHost, ewma: boolean) {
    this.#states = states;
    this.#host = host;
    this.#ewma = ewma;
    this.#choices = host.config.choiceCount;
    this.#timeMode = host.config.slowStart !== undefined ? 2 : ewma ? 1 : 0;
  }

  #cost(s: EndpointState, now: number): number {
    const w = this.#host.effectiveWeight(s, now);
    const load = s.inflight + 1;
    const base = this.#ewma ? this.#host.latency(s, now) * load : load;
    return w > 0 ? base / w : Number.POSITIVE_INFINITY;
  }

  pick(): EndpointState {
    const states = this.#states;
    const n = states.length;
    if (n === 1) return states[0] as EndpointState;
    const ints = this.#host.ints;
    const first = ints.int(n);
    const mode = this.#timeMode;
    const now = mode === 0 ? 0 : mode === 1 ? this.#host.recentNow() : this.#host.now();
    let best = states[first] as EndpointState;
    let bestCost = this.#cost(best, now);
    for (let k = 1; k < this.#choices; k++) {
      let j = ints.int(n - 1);
      if (j >= first) j++;
      const c = states[j] as EndpointState;
      const cost = this.#cost(c, now);
      if (cost < bestCost) {
        best = c;
        bestCost = cost;
      }
    }
    return best;
  }
}

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
    hashNumberInto(attr);
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
 * Consistent hashing on a ring (Ketama-style, as Envoy's `RING_HASH`): each endpoint owns a
 * number of points proportional to its weight, at least `minRingSize` points in all (about twice
 * that, at most `maxRingSize`, and at least one per endpoint); a key goes
 * to the first point at or after its hash. O(log ring) per pick. Requests without a key go to a
 * random point.
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
    // Points per weight unit. An endpoint's points are a prefix of its replica sequence, so keeping
    // the previous ring's figure while the ring stays within minRingSize..4×minRingSize means a
    // membership change moves only ≈ 1/n of the keys. A new figure aims at 2×minRingSize points,
    // so that adding or removing up to half of the endpoints keeps it.
    let base = host.ringBase;
    const keep =
      base > 0 && units * base >= minRingSize && units * base <= Math.min(4 * minRingSize, maxRingSize);
    if (!keep) {
      base = Math.max(1, Math.ceil((2 * minRingSize) / units));
      if (units * base > maxRingSize) base = maxRingSize / units;
    }
    host.ringBase = base;
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
    let filled = 0;
    const limit = Math.min(m, n > 0 ? m : 0);
    while (filled < limit) {
      for (let i = 0; i < n && filled < limit; i++) {
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

import { setMaxListeners } from 'node:events';
import {
  type Clock,
  type Disposable,
  type Endpoint,
  type EndpointSet,
  Issues,
  isIPv4,
  isIPv6,
  isValidHost,
  type Logger,
  MeshError,
  noopLogger,
  parseHostPort,
  type Random,
  type Resolver,
  type ResolverListener,
  systemClock,
  systemRandom,
} from '@proxyless/core';
import { type BackoffOptions, backoffDelay } from '../backoff.js';
import { ResolverHub, type WatchSink } from '../hub.js';
import { lookupService, TARGET_LOOKUPS } from './lookup.js';
import { ambiguousIPv6, ServerOrder } from './servers.js';
import { type DnsServer, normalizeName } from './wire.js';

/** Defaults of {@link DnsResolverOptions}. */
export const DNS_DEFAULTS = Object.freeze({
  srv: '_http._tcp',
  defaultPort: 80,
  minRefreshMs: 5_000,
  maxRefreshMs: 300_000,
  timeoutMs: 2_000,
  attempts: 2,
  backoff: Object.freeze({ baseMs: 1_000, capMs: 30_000 }),
});

/** The most rounds {@link DnsResolverOptions.attempts} allows (glibc caps resolv.conf's `attempts` at 5). */
export const MAX_ATTEMPTS = 5;

/** Options of {@link createDnsResolver}. */
export interface DnsResolverOptions {
  /**
   * DNS servers queried directly, in order (the next is tried when one fails; one that gave no
   * answer is asked after the others for the next 30 s): `DnsServer` objects or `ip:port`
   * strings (`[::1]:53` for IPv6). IP literals only.
   * @defaultValue the system's servers (`node:dns` `getServers()`)
   */
  servers?: readonly (DnsServer | string)[];
  /**
   * Domain suffixes this resolver answers for: with `svc.cluster.local`, the URL host
   * `api.svc.cluster.local` is the service `api.svc.cluster.local`. The first domain also
   * qualifies short names listed in `services` (`api` is looked up as `api.svc.cluster.local`).
   */
  domains?: readonly string[];
  /** Host names answered whatever their domain; a name without a dot is qualified with `domains[0]`. */
  services?: readonly string[];
  /**
   * SRV lookup: the `_service._proto` prefix put before the name, `true` for `_http._tcp`,
   * `'name'` for the SRV records of the name itself (Consul's DNS interface answers SRV for
   * `web.service.consul`, with each instance's port), or `false` to look up A/AAAA only. When the
   * SRV name has no records, A/AAAA of the name itself are used with `defaultPort`.
   * @defaultValue `'_http._tcp'`
   */
  srv?: boolean | string;
  /** Port of endpoints found through A/AAAA records. @defaultValue 80 */
  defaultPort?: number;
  /** Shortest interval between refreshes, whatever the TTL. @defaultValue 5000 */
  minRefreshMs?: number;
  /** Longest interval between refreshes, whatever the TTL. @defaultValue 300000 */
  maxRefreshMs?: number;
  /** Timeout of one query to one server (UDP, then TCP when truncated). @defaultValue 2000 */
  timeoutMs?: number;
  /**
   * Rounds over the server list for one query, as resolv.conf's `attempts`: a query no server
   * answered (a lost datagram, a timeout, a refusal) is sent again, server by server, up to this
   * many times before the lookup fails. A server that answered, with an error code (SERVFAIL)
   * too, is not asked again in a later round.
   * @defaultValue 2 (glibc's default); at most 5 (glibc's cap)
   */
  attempts?: number;
  /** Retry delays after a failed refresh (exponential, full jitter). @defaultValue `{ baseMs: 1000, capMs: 30000 }` */
  backoff?: BackoffOptions;
  clock?: Clock;
  random?: Random;
  logger?: Logger;
}

/** Fully validated options. */
export interface DnsSettings {
  servers: readonly DnsServer[];
  /** The order to ask `servers` in: one that failed to answer lately goes last. */
  order: ServerOrder;
  domains: readonly string[];
  services: ReadonlySet<string>;
  /** The SRV prefix; `''` asks SRV of the name itself; `undefined`: no SRV lookup. */
  srv: string | undefined;
  defaultPort: number;
  minRefreshMs: number;
  maxRefreshMs: number;
  timeoutMs: number;
  /** Rounds over the server list for one query (see {@link DnsResolverOptions.attempts}). */
  attempts: number;
  backoff: BackoffOptions;
  clock: Clock;
  random: Random;
  logger: Logger;
}

/** What one refresh found: the endpoints and how long they may be trusted (ms, before clamping). */
export interface DnsLookupResult {
  readonly endpoints: readonly Endpoint[];
  readonly ttlMs: number;
}

/** A DNS resolver: the core `Resolver` plus `current()` for diagnostics. */
export interface DnsResolver extends Resolver {
  /** The current set of a watched service, if an answer arrived. */
  current(service: string): EndpointSet | undefined;
  /** The DNS name a service is looked up as (A/AAAA; SRV adds the prefix). */
  dnsName(service: string): string;
  /** Look a watched service up again soon (see `Resolver.refresh`): now, or `minRefreshMs` after its last answer. */
  refresh(service: string): void;
}

const SRV_PREFIX = /^_[a-z0-9][a-z0-9-]*\._[a-z0-9][a-z0-9-]*$/i;

/**
 * `system`: from `getServers()`, which brackets an IPv6 address whenever its port is not 53, so a
 * bare one reads one way only.
 */
function parseServer(
  value: DnsServer | string,
  field: string,
  issues: Issues,
  system: boolean,
): DnsServer | undefined {
  if (typeof value === 'string') {
    const s = value.trim();
    const ambiguous = system ? undefined : ambiguousIPv6(s);
    if (ambiguous !== undefined) return issues.add(field, ambiguous, value);
    // A bare IP (no port) means port 53.
    const hp = isIPv4(s) || isIPv6(s) ? { address: s, port: 53 } : issues.try(() => parseHostPort(s, field));
    if (hp === undefined) return undefined;
    if (!isIPv4(hp.address) && !isIPv6(hp.address)) {
      return issues.add(field, 'an IP address with an optional port (ip:port, [v6]:port)', value);
    }
    return { address: hp.address, port: hp.port };
  }
  const obj = issues.object(value, field);
  if (!obj) return undefined;
  const address = issues.string(obj.address, `${field}.address`);
  const port = issues.integer(obj.port, `${field}.port`, { min: 1, max: 65535 });
  if (address !== undefined && !isIPv4(address) && !isIPv6(address)) {
    return issues.add(`${field}.address`, 'an IPv4 or IPv6 address', address);
  }
  return address === undefined || port === undefined ? undefined : { address, port };
}

function domainName(value: unknown, field: string, issues: Issues): string | undefined {
  const s = issues.string(value, field);
  if (s === undefined) return undefined;
  const n = normalizeName(s.trim().replace(/^\./, ''));
  if (!isValidHost(n) || isIPv4(n) || isIPv6(n)) return issues.add(field, 'a DNS name', value);
  return n;
}

/** Validate options; throws `MESH_CONFIG_INVALID` listing every problem. */
function settingsFrom(options: DnsResolverOptions, field: string): DnsSettings {
  const issues = new Issues();
  const rawServers = options.servers ?? process.getBuiltinModule('node:dns').getServers();
  const servers: DnsServer[] = [];
  if (rawServers.length === 0) issues.add(`${field}.servers`, 'at least one DNS server', rawServers);
  rawServers.forEach((s, i) => {
    const server = parseServer(s, `${field}.servers[${i}]`, issues, options.servers === undefined);
    if (server) servers.push(server);
  });
  const domains: string[] = [];
  (options.domains ?? []).forEach((d, i) => {
    const n = domainName(d, `${field}.domains[${i}]`, issues);
    if (n !== undefined) domains.push(n);
  });
  const services = new Set<string>();
  (options.services ?? []).forEach((d, i) => {
    const n = domainName(d, `${field}.services[${i}]`, issues);
    if (n !== undefined) services.add(n);
  });
  let srv: string | undefined;
  if (options.srv === undefined || options.srv === true) srv = DNS_DEFAULTS.srv;
  else if (options.srv === false) srv = undefined;
  else if (typeof options.srv === 'string' && options.srv.trim().toLowerCase() === 'name') srv = '';
  else if (typeof options.srv === 'string' && SRV_PREFIX.test(options.srv.trim()))
    srv = options.srv.trim().toLowerCase();
  else issues.add(`${field}.srv`, 'true, false, an SRV prefix like _http._tcp, or name', options.srv);
  const defaultPort =
    options.defaultPort === undefined
      ? DNS_DEFAULTS.defaultPort
      : issues.integer(options.defaultPort, `${field}.defaultPort`, { min: 1, max: 65535 });
  const duration = (
    value: number | undefined,
    name: string,
    fallback: number,
    min: number,
  ): number | undefined =>
    value === undefined ? fallback : issues.integer(value, `${field}.${name}`, { min, max: 86_400_000 });
  const minRefreshMs = duration(options.minRefreshMs, 'minRefreshMs', DNS_DEFAULTS.minRefreshMs, 1);
  const maxRefreshMs = duration(options.maxRefreshMs, 'maxRefreshMs', DNS_DEFAULTS.maxRefreshMs, 1);
  const timeoutMs = duration(options.timeoutMs, 'timeoutMs', DNS_DEFAULTS.timeoutMs, 1);
  const attempts =
    options.attempts === undefined
      ? DNS_DEFAULTS.attempts
      : issues.integer(options.attempts, `${field}.attempts`, { min: 1, max: MAX_ATTEMPTS });
  if (minRefreshMs !== undefined && maxRefreshMs !== undefined && minRefreshMs > maxRefreshMs) {
    issues.add(`${field}.maxRefreshMs`, `a duration ≥ minRefreshMs (${minRefreshMs}ms)`, maxRefreshMs);
  }
  const backoff = options.backoff ?? DNS_DEFAULTS.backoff;
  const baseMs = issues.integer(backoff.baseMs, `${field}.backoff.baseMs`, { min: 1 });
  const capMs = issues.integer(backoff.capMs, `${field}.backoff.capMs`, { min: 1 });
  issues.throwIfAny('invalid DNS resolver options');
  const clock = options.clock ?? systemClock;
  return {
    servers,
    order: new ServerOrder(servers, clock),
    domains,
    services,
    srv,
    defaultPort: defaultPort!,
    minRefreshMs: minRefreshMs!,
    maxRefreshMs: maxRefreshMs!,
    timeoutMs: timeoutMs!,
    attempts: attempts!,
    backoff: { baseMs: baseMs!, capMs: capMs! },
    clock,
    random: options.random ?? systemRandom,
    logger: options.logger ?? noopLogger,
  };
}

/**
 * Discovery through DNS: SRV records (`_http._tcp.<name>`; every priority group, each endpoint
 * with its record's priority as its priority level, SRV weight as endpoint weight, targets
 * resolved through the additional section or A/AAAA queries), else A/AAAA records of the name
 * with `defaultPort`. Each service is refreshed
 * when its answer's TTL expires, kept between `minRefreshMs` and `maxRefreshMs`. NXDOMAIN or
 * no records from a healthy server is applied as an empty set; a timeout, network error,
 * server failure (SERVFAIL, REFUSED) or malformed answer keeps the last set (marked stale) and
 * is retried with backoff.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` naming every bad option and its value.
 * @example
 * const dns = createDnsResolver({ servers: ['10.0.0.2:53'], domains: ['svc.cluster.local'] });
 * dns.match('api.svc.cluster.local'); // 'api.svc.cluster.local'
 */
export function createDnsResolver(options: DnsResolverOptions = {}): DnsResolver {
  return new DnsResolverImpl(settingsFrom(options, 'options'));
}

class DnsResolverImpl implements DnsResolver {
  readonly name = 'dns';
  readonly #settings: DnsSettings;
  readonly #hub: ResolverHub;
  /** The refresh hint of each running watch ({@link refresh}). */
  readonly #hints = new Map<string, () => void>();
  #closing: Promise<void> | undefined;

  constructor(settings: DnsSettings) {
    this.#settings = settings;
    this.#hub = new ResolverHub({
      name: 'dns',
      clock: settings.clock,
      logger: settings.logger,
      start: (service, sink) => this.#startWatch(service, sink),
    });
  }

  match(host: string): string | undefined {
    const h = normalizeName(host);
    if (this.#settings.services.has(h)) return h;
    for (const d of this.#settings.domains) if (h.endsWith(`.${d}`)) return h;
    return undefined;
  }

  dnsName(service: string): string {
    const n = normalizeName(service);
    const first = this.#settings.domains[0];
    return !n.includes('.') && first !== undefined ? `${n}.${first}` : n;
  }

  watch(service: string, listener: ResolverListener): Disposable {
    return this.#hub.watch(normalizeName(service), listener);
  }

  current(service: string): EndpointSet | undefined {
    return this.#hub.current(normalizeName(service));
  }

  /**
   * An endpoint of `service` refused or timed out a connect: look the name up again now if the
   * last answer is at least `minRefreshMs` old, else once it is (never sooner; a refresh already
   * due sooner, under way or backing off after a failure is left as it is).
   */
  refresh(service: string): void {
    this.#hints.get(normalizeName(service))?.();
  }

  close(): Promise<void> {
    this.#closing ??= this.#hub.close();
    return this.#closing;
  }

  #startWatch(service: string, sink: WatchSink): () => void {
    const s = this.#settings;
    const abort = new AbortController();
    // Every query of a refresh listens on this signal: up to 2 × TARGET_LOOKUPS target queries at
    // once, more than Node's default of 10 before it warns of a leak (each leaves when done).
    setMaxListeners(4 * TARGET_LOOKUPS, abort.signal);
    let timer: { cancel(): void } | undefined;
    /** When the timer fires (mesh clock). */
    let dueAt = 0;
    /** When the last answer was applied (mesh clock); undefined before the first. */
    let answeredAt: number | undefined;
    let failures = 0;
    let stopped = false;
    const schedule = (ms: number): void => {
      if (stopped) return;
      dueAt = s.clock.now() + ms;
      timer = s.clock.setTimer(ms, run);
    };
    const run = (): void => {
      timer = undefined;
      lookupService(s, this.dnsName(service), abort.signal).then(
        (result) => {
          if (stopped) return;
          failures = 0;
          answeredAt = s.clock.now();
          sink.endpoints(result.endpoints);
          schedule(Math.min(s.maxRefreshMs, Math.max(s.minRefreshMs, result.ttlMs)));
        },
        (error: unknown) => {
          if (stopped) return;
          const meshError = MeshError.is(error)
            ? error
            : new MeshError('MESH_INTERNAL', `DNS lookup of ${service} failed: ${String(error)}`, {
                cause: error,
              });
          s.logger.warn('DNS refresh failed; keeping the last answer', {
            resolver: 'dns',
            service,
            code: meshError.code,
            error: meshError.message,
          });
          sink.error(meshError);
          // Never a busy loop: at least a tenth of the base delay between attempts.
          const delay = Math.max(
            Math.ceil(s.backoff.baseMs / 10),
            backoffDelay(failures++, s.backoff, s.random),
          );
          schedule(delay);
        },
      );
    };
    const hint = (): void => {
      // Under way (no timer), backing off after a failure, or not answered yet: nothing to hurry.
      if (stopped || timer === undefined || failures > 0 || answeredAt === undefined) return;
      const at = Math.max(s.clock.now(), answeredAt + s.minRefreshMs);
      if (at >= dueAt) return;
      timer.cancel();
      const inMs = at - s.clock.now();
      s.logger.debug('DNS refresh brought forward: a connect to an endpoint failed', {
        resolver: 'dns',
        service,
        inMs,
      });
      if (inMs > 0) schedule(inMs);
      else run();
    };
    this.#hints.set(service, hint);
    run();
    return () => {
      stopped = true;
      if (this.#hints.get(service) === hint) this.#hints.delete(service);
      timer?.cancel();
      abort.abort();
    };
  }
}

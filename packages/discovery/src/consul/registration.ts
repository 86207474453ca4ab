/**
 * The agent registration body of a {@link Registration} and its validation.
 *
 * Without a check of its own, an instance gets a TTL check (15 s, heartbeat every 5 s) that the
 * agent reaps one minute after it goes critical: a process killed with `kill -9` leaves rotation
 * after at most 15 s and the catalog after about a minute more, instead of staying `passing`.
 */
import { type HealthCheckDefinition, Issues, type Registration } from '@proxyless/core';
import { checkEndpointAddress } from '../endpoint-doc.js';

/** The check an instance gets when the registration names none. */
export const DEFAULT_CONSUL_CHECK: Readonly<HealthCheckDefinition> = Object.freeze({
  kind: 'ttl',
  ttlMs: 15_000,
  // Consul's minimum; the reaper runs every 30 s, so the instance is gone 1–1.5 min after.
  deregisterAfterMs: 60_000,
});

const META_KEY = /^[A-Za-z0-9_-]{1,128}$/;

function goDuration(ms: number): string {
  return `${Math.max(1, Math.round(ms))}ms`;
}

/** The agent registration body for a registration (exported for documentation and tests). */
export function consulServiceDefinition(
  reg: Registration,
  id: string,
  zoneMetaKey = 'zone',
): Record<string, unknown> {
  const meta: Record<string, string> = { ...(reg.metadata ?? {}) };
  if (reg.zone !== undefined) meta[zoneMetaKey] = reg.zone;
  const body: Record<string, unknown> = {
    Name: reg.service,
    ID: id,
    Address: reg.address,
    Port: reg.port,
    Tags: [...(reg.tags ?? [])],
    Meta: meta,
  };
  if (reg.weights) body.Weights = { Passing: reg.weights.passing, Warning: reg.weights.warning };
  const check = reg.check ? checkDefinition(reg.check, id) : undefined;
  if (check) body.Check = check;
  return body;
}

export function ttlCheckId(id: string): string {
  return `service:${id}:ttl`;
}

function checkDefinition(c: HealthCheckDefinition, id: string): Record<string, unknown> {
  const dereg =
    c.deregisterAfterMs !== undefined
      ? { DeregisterCriticalServiceAfter: goDuration(c.deregisterAfterMs) }
      : {};
  switch (c.kind) {
    case 'http':
      return {
        HTTP: c.url,
        Method: 'GET',
        Interval: goDuration(c.intervalMs),
        Timeout: goDuration(c.timeoutMs),
        ...dereg,
      };
    case 'tcp':
      return {
        TCP: c.address,
        Interval: goDuration(c.intervalMs),
        Timeout: goDuration(c.timeoutMs),
        ...dereg,
      };
    case 'ttl':
      return {
        CheckID: ttlCheckId(id),
        Name: 'proxyless heartbeat',
        TTL: goDuration(c.ttlMs),
        Status: 'passing',
        ...dereg,
      };
  }
}

export function validateRegistration(reg: Registration, zoneMetaKey: string): void {
  const issues = new Issues();
  const r = reg as unknown as Record<string, unknown>;
  issues.string(r.service, 'registration.service', {
    pattern: /^[A-Za-z0-9_.-]+$/,
    patternText: 'a service name',
  });
  if (reg.id !== undefined) issues.string(r.id, 'registration.id');
  // The rule readers apply to Service.Address (payload.ts): an address they would reject would
  // make every watcher of the service reject the whole health answer.
  const address = issues.string(r.address, 'registration.address');
  if (address !== undefined) {
    const checked = checkEndpointAddress(address);
    if (typeof checked !== 'string') issues.add('registration.address', checked.expected, address);
    // Stored as given: bare, as the etcd registrar takes it (brackets belong to URLs and host:port).
    else if (address.startsWith('['))
      issues.add('registration.address', 'an IPv6 address without brackets (::1, not [::1])', address);
  }
  if (reg.address === '0.0.0.0' || reg.address === '::')
    issues.add('registration.address', 'an address other peers can dial (not 0.0.0.0 or ::)', reg.address);
  issues.integer(r.port, 'registration.port', { min: 1, max: 65535 });
  if (reg.tags !== undefined) issues.stringArray(reg.tags, 'registration.tags');
  if (reg.metadata !== undefined) {
    const m = issues.stringRecord(reg.metadata, 'registration.metadata');
    for (const k of Object.keys(m ?? {})) {
      if (!META_KEY.test(k) || k.startsWith('consul-'))
        issues.add(
          `registration.metadata.${k}`,
          'a key of letters, digits, - and _ (≤ 128, no consul- prefix)',
          k,
        );
    }
  }
  if (reg.weights !== undefined) {
    issues.integer(reg.weights.passing, 'registration.weights.passing', { min: 1, max: 65535 });
    issues.integer(reg.weights.warning, 'registration.weights.warning', { min: 0, max: 65535 });
  }
  const c = reg.check;
  if (c !== undefined) {
    if (c.kind === 'http') {
      try {
        const u = new URL(c.url);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
      } catch {
        issues.add('registration.check.url', 'an http:// or https:// URL', c.url);
      }
    }
    if (c.kind === 'tcp')
      issues.string(c.address, 'registration.check.address', {
        pattern: /^\S+:\d+$/,
        patternText: 'host:port',
      });
    if (c.kind === 'http' || c.kind === 'tcp') {
      issues.integer(c.intervalMs, 'registration.check.intervalMs', { min: 1 });
      issues.integer(c.timeoutMs, 'registration.check.timeoutMs', { min: 1 });
    } else if (c.kind === 'ttl') {
      issues.integer(c.ttlMs, 'registration.check.ttlMs', { min: 3 });
    } else {
      issues.add('registration.check.kind', 'one of http, tcp, ttl', (c as { kind?: unknown }).kind);
    }
    if (c.deregisterAfterMs !== undefined)
      issues.integer(c.deregisterAfterMs, 'registration.check.deregisterAfterMs', { min: 60_000 });
  }
  if (reg.zone !== undefined) issues.string(reg.zone, 'registration.zone');
  if (!META_KEY.test(zoneMetaKey)) issues.add('zoneMetaKey', 'a meta key', zoneMetaKey);
  issues.throwIfAny('invalid Consul registration');
}

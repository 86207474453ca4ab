/**
 * Validation of `GET /v1/health/service/:name` answers. A payload is accepted or rejected as a
 * whole: any problem yields one `MESH_REGISTRY_PAYLOAD_INVALID` naming every bad field path
 * (`[2].Service.Port`) and value, and nothing from that payload is applied.
 */
import { type ConfigIssue, type EndpointHealth, type EndpointInit, MeshError, quote } from '@proxyless/core';
import { checkEndpointAddress } from '../endpoint-doc.js';

/** How entries turn into endpoints. */
export interface HealthPayloadOptions {
  /** Keep only instances whose every check passes. @defaultValue false (passing and warning) */
  onlyPassing?: boolean;
  /** Node (then service) meta key holding the zone. @defaultValue 'zone' */
  zoneMetaKey?: string;
}

/** The result of a valid payload. */
export interface HealthPayload {
  endpoints: EndpointInit[];
  /** Instances left out and why (critical, maintenance, no port, weight 0). */
  skipped: Array<{ id: string; reason: string }>;
}

/**
 * The check statuses Consul sends (consul-api.md §4.1). Maintenance is no status of its own: it is
 * a critical check with a maintenance check ID (§3.1), read as `maintenance` below.
 */
const STATUSES = ['passing', 'warning', 'critical'] as const;
/** A check's status as the mesh reads it: Consul's, or `maintenance` for a maintenance check. */
type CheckStatus = (typeof STATUSES)[number] | 'maintenance';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Collects issues by field path. */
class PayloadIssues {
  readonly list: ConfigIssue[] = [];
  add(field: string, expected: string, value: unknown): undefined {
    this.list.push({ field, expected, value });
    return undefined;
  }
  object(v: unknown, field: string): Record<string, unknown> | undefined {
    return isObject(v) ? v : this.add(field, 'an object', v);
  }
  string(v: unknown, field: string, nonEmpty = false): string | undefined {
    if (typeof v !== 'string') return this.add(field, nonEmpty ? 'a non-empty string' : 'a string', v);
    if (nonEmpty && v === '') return this.add(field, 'a non-empty string', v);
    return v;
  }
  optionalString(v: unknown, field: string): string | undefined {
    return v === undefined || v === null ? '' : this.string(v, field);
  }
  stringArray(v: unknown, field: string): string[] | undefined {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) return this.add(field, 'an array of strings', v);
    let ok = true;
    v.forEach((x, i) => {
      if (typeof x !== 'string') ok = this.add(`${field}[${i}]`, 'a string', x) ?? false;
    });
    return ok ? (v as string[]) : undefined;
  }
  stringMap(v: unknown, field: string): Record<string, string> | undefined {
    if (v === undefined || v === null) return {};
    if (!isObject(v)) return this.add(field, 'an object of strings', v);
    let ok = true;
    for (const [k, x] of Object.entries(v)) {
      if (typeof x !== 'string') ok = this.add(`${field}.${k}`, 'a string', x) ?? false;
    }
    return ok ? (v as Record<string, string>) : undefined;
  }
  weight(v: unknown, field: string, min: number): number | undefined {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 65535)
      return this.add(field, `an integer ${min}..65535`, v);
    return v;
  }
}

/** The error for a rejected payload. */
export function payloadError(what: string, issues: readonly ConfigIssue[], service?: string): MeshError {
  const lines = issues.map((i) => `${i.field}: expected ${i.expected}, got ${quote(i.value)}`);
  const first = issues[0];
  return new MeshError(
    'MESH_REGISTRY_PAYLOAD_INVALID',
    issues.length === 1
      ? `${what}: ${lines[0]}`
      : `${what}: ${issues.length} problems:\n  ${lines.join('\n  ')}`,
    { details: { field: first?.field, value: first?.value, issues, ...(service ? { service } : {}) } },
  );
}

/** Parse JSON text, or throw `MESH_REGISTRY_PAYLOAD_INVALID` for field `body`. */
export function parseJsonPayload(text: string, what: string, service?: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const shown = text.length > 80 ? `${text.slice(0, 77)}...` : text;
    throw payloadError(
      what,
      [{ field: 'body', value: shown, expected: `valid JSON (${(error as Error).message})` }],
      service,
    );
  }
}

/** Aggregated status of an entry: maintenance > critical > warning > passing. */
function aggregate(statuses: readonly CheckStatus[]): CheckStatus {
  let best: CheckStatus = 'passing';
  const rank: Record<CheckStatus, number> = { passing: 0, warning: 1, critical: 2, maintenance: 3 };
  for (const s of statuses) if (rank[s] > rank[best]) best = s;
  return best;
}

/**
 * Validate a decoded `health/service` answer and turn it into endpoints.
 * Address: `Service.Address`, else `Node.Address`. Health: the aggregate of every check on the
 * entry (node checks count); critical and maintenance instances are left out, warning ones too
 * with `onlyPassing`. Weight: `Weights.Passing` or `Weights.Warning`; weight 0 is left out.
 * Zone: `Service.Meta[zoneMetaKey]`, else `Node.Meta[zoneMetaKey]`.
 */
export function parseHealthPayload(
  value: unknown,
  what: string,
  options: HealthPayloadOptions = {},
  service?: string,
): HealthPayload {
  const issues = new PayloadIssues();
  const zoneKey = options.zoneMetaKey ?? 'zone';
  if (!Array.isArray(value)) {
    throw payloadError(what, [{ field: 'body', value, expected: 'a JSON array of health entries' }], service);
  }
  const built: Array<{ init: EndpointInit; node: string; status: CheckStatus }> = [];
  const skipped: Array<{ id: string; reason: string }> = [];
  value.forEach((entry, i) => {
    const at = `[${i}]`;
    const e = issues.object(entry, at);
    if (!e) return;
    const node = issues.object(e.Node, `${at}.Node`);
    const svc = issues.object(e.Service, `${at}.Service`);
    const checks = e.Checks === undefined || e.Checks === null ? [] : e.Checks;
    const statuses: CheckStatus[] = [];
    if (!Array.isArray(checks)) issues.add(`${at}.Checks`, 'an array', checks);
    else
      checks.forEach((c, j) => {
        const cf = `${at}.Checks[${j}]`;
        const check = issues.object(c, cf);
        if (!check) return;
        const st = check.Status;
        if (typeof st !== 'string' || !(STATUSES as readonly string[]).includes(st))
          issues.add(`${cf}.Status`, `one of ${STATUSES.join(', ')}`, st);
        else statuses.push(st as CheckStatus);
        const id = check.CheckID;
        if (typeof id === 'string' && (id === '_node_maintenance' || id.startsWith('_service_maintenance:')))
          statuses.push('maintenance');
      });
    if (!node || !svc) return;
    const nodeName = issues.string(node.Node, `${at}.Node.Node`, true);
    const nodeAddress = issues.optionalString(node.Address, `${at}.Node.Address`);
    const nodeMeta = issues.stringMap(node.Meta, `${at}.Node.Meta`);
    const id = issues.string(svc.ID, `${at}.Service.ID`, true);
    const name = issues.string(svc.Service, `${at}.Service.Service`, true);
    const svcAddress = issues.optionalString(svc.Address, `${at}.Service.Address`);
    const tags = issues.stringArray(svc.Tags, `${at}.Service.Tags`);
    const meta = issues.stringMap(svc.Meta, `${at}.Service.Meta`);
    let port: number | undefined = 0;
    if (svc.Port !== undefined && svc.Port !== null) {
      const p = svc.Port;
      if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > 65535) {
        port = issues.add(`${at}.Service.Port`, 'an integer 1..65535', p);
      } else port = p;
    }
    let passingWeight: number | undefined = 1;
    let warningWeight: number | undefined = 1;
    if (svc.Weights !== undefined && svc.Weights !== null) {
      const w = issues.object(svc.Weights, `${at}.Service.Weights`);
      if (w) {
        // Consul itself refuses (agent) or replaces (catalog) a passing weight below 1, so 0
        // should not come back; if it does, it leaves that instance out (below) as a 0 warning
        // weight does, rather than rejecting the whole answer.
        passingWeight = issues.weight(w.Passing, `${at}.Service.Weights.Passing`, 0);
        warningWeight = issues.weight(w.Warning, `${at}.Service.Weights.Warning`, 0);
      }
    }
    // The address to dial: the rule of every endpoint address (etcd values, the config file), so
    // a value undici cannot dial (`host:port`, `999.1.1.1`, a zone id) rejects the answer here
    // instead of failing every request to it with ERR_INVALID_URL. Brackets are removed.
    let address: string | undefined;
    if (svcAddress !== undefined && nodeAddress !== undefined) {
      const raw = svcAddress !== '' ? svcAddress : nodeAddress;
      const field = svcAddress !== '' ? `${at}.Service.Address` : `${at}.Node.Address`;
      if (raw === '') issues.add(`${at}.Service.Address`, 'an address here or in Node.Address', svcAddress);
      else {
        const checked = checkEndpointAddress(raw);
        if (typeof checked === 'string') address = checked;
        else issues.add(field, checked.expected, raw);
      }
    }
    if (
      !issues.list.length &&
      id &&
      name &&
      nodeName &&
      tags &&
      meta &&
      nodeMeta &&
      port !== undefined &&
      address !== undefined
    ) {
      const status = aggregate(statuses);
      const health: EndpointHealth =
        status === 'passing' ? 'passing' : status === 'warning' ? 'warning' : 'critical';
      const weight = health === 'warning' ? (warningWeight ?? 1) : (passingWeight ?? 1);
      const zone = meta[zoneKey] ?? nodeMeta[zoneKey];
      built.push({
        node: nodeName,
        status,
        init: {
          id,
          address,
          port,
          weight,
          tags: [...tags],
          metadata: { ...meta },
          health,
          ...(zone !== undefined && zone !== '' ? { zone } : {}),
        },
      });
    }
  });
  if (issues.list.length) throw payloadError(what, issues.list, service);

  // Service IDs are unique per node only: qualify duplicates with the node name.
  const counts = new Map<string, number>();
  for (const b of built) counts.set(b.init.id ?? '', (counts.get(b.init.id ?? '') ?? 0) + 1);
  const endpoints: EndpointInit[] = [];
  for (const b of built) {
    const id = (counts.get(b.init.id ?? '') ?? 0) > 1 ? `${b.init.id}@${b.node}` : (b.init.id ?? '');
    const init = { ...b.init, id };
    if (b.status === 'critical' || b.status === 'maintenance') skipped.push({ id, reason: b.status });
    else if (b.status === 'warning' && options.onlyPassing)
      skipped.push({ id, reason: 'warning (onlyPassing)' });
    else if (init.port === 0) skipped.push({ id, reason: 'no port registered' });
    else if (init.weight === 0) skipped.push({ id, reason: 'weight 0' });
    else endpoints.push(init);
  }
  return { endpoints, skipped };
}

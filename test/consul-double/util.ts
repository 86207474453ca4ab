/**
 * Helpers of the Consul double: Go durations, Go-style JSON decode errors, plain-text HTTP
 * errors, check validation and the go-bexpr subset. Test tree only.
 */
import type { IncomingMessage } from 'node:http';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(body);
  }
}

const GO_DURATION = /^(?:(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h))+$/;
const GO_DURATION_PART = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parse a Go duration string (`10s`, `1m30s`, `300000ms`); `undefined` when invalid. */
export function parseGoDuration(text: string): number | undefined {
  if (text === '0') return 0;
  if (!GO_DURATION.test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(GO_DURATION_PART)) ms += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? 0);
  return ms;
}

export const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function decodeFail(msg: string): HttpError {
  return new HttpError(400, `Request decode failed: ${msg}`);
}

export function strField(o: Record<string, unknown>, key: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string')
    throw decodeFail(`json: cannot unmarshal ${typeof v} into Go struct field .${key} of type string`);
  return v;
}

export function numField(o: Record<string, unknown>, key: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v))
    throw decodeFail(`json: cannot unmarshal ${typeof v} into Go struct field .${key} of type int`);
  return v;
}

export function strArray(o: Record<string, unknown>, key: string): string[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
    throw decodeFail(`json: cannot unmarshal into Go struct field .${key} of type []string`);
  return v as string[];
}

export function strMap(o: Record<string, unknown>, key: string): Record<string, string> {
  const v = o[key];
  if (v === undefined || v === null) return {};
  if (!isObject(v) || Object.values(v).some((x) => typeof x !== 'string'))
    throw decodeFail(`json: cannot unmarshal into Go struct field .${key} of type map[string]string`);
  return { ...(v as Record<string, string>) };
}

export function validateCheck(c: Record<string, unknown>): void {
  if (c.Header !== undefined && c.Header !== null) {
    if (
      !isObject(c.Header) ||
      Object.values(c.Header).some((v) => !Array.isArray(v) || v.some((x) => typeof x !== 'string'))
    )
      throw decodeFail(
        'json: cannot unmarshal string into Go struct field CheckType.Header of type []string',
      );
  }
  const status = c.Status;
  if (
    status !== undefined &&
    status !== '' &&
    status !== 'passing' &&
    status !== 'warning' &&
    status !== 'critical'
  )
    throw new HttpError(400, "Status for checks must 'passing', 'warning', 'critical'");
  const interval = typeof c.Interval === 'string' ? parseGoDuration(c.Interval) : undefined;
  const ttl = typeof c.TTL === 'string' ? parseGoDuration(c.TTL) : undefined;
  const intervalType = ['HTTP', 'TCP', 'UDP', 'GRPC', 'H2PING', 'Args', 'ScriptArgs', 'OSService'].some(
    (k) => c[k] !== undefined && c[k] !== '' && c[k] !== null,
  );
  if (interval && ttl) throw new HttpError(400, 'Invalid check: Interval and TTL cannot both be specified');
  if (intervalType && !interval)
    throw new HttpError(
      400,
      'Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks',
    );
  if (!intervalType && !ttl && !c.AliasService && !c.AliasNode)
    throw new HttpError(400, 'Invalid check: TTL must be > 0 for TTL checks');
}

/** The subset of go-bexpr the double supports: `Service.Meta.<k> == "<v>"`, `"<t>" in Service.Tags`, joined by `and`. */
export function compileFilter(
  expr: string,
): (e: { Service: { Tags: string[]; Meta: Record<string, string> } }) => boolean {
  const parts = expr.split(/\s+and\s+/);
  const preds = parts.map((p) => {
    let m = p.trim().match(/^Service\.Meta\.([A-Za-z0-9_-]+)\s*(==|!=)\s*"([^"]*)"$/);
    if (m) {
      const [, k = '', op, v] = m;
      return (e: { Service: { Meta: Record<string, string> } }) =>
        (e.Service.Meta[k] === v) === (op === '==');
    }
    m = p.trim().match(/^"([^"]*)"\s+(in|not in)\s+Service\.Tags$/);
    if (m) {
      const [, t = '', op] = m;
      return (e: { Service: { Tags: string[] } }) => e.Service.Tags.includes(t) === (op === 'in');
    }
    throw new HttpError(
      400,
      `Failed to create boolean expression evaluator: unsupported expression ${JSON.stringify(p)}`,
    );
  });
  return (e) => preds.every((f) => f(e));
}

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** `strconv.ParseBool`'s true forms (Consul parses `?passing` and its env booleans with it). */
export const GO_TRUE: ReadonlySet<string> = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
/** `strconv.ParseBool`'s false forms. */
export const GO_FALSE: ReadonlySet<string> = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

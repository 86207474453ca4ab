import type { Readable } from 'node:stream';
import {
  isIdempotentMethod,
  isReplayableBody,
  type MeshRequest,
  type RequestBody,
  type RequestHeaders,
} from '@proxyless/core';

/**
 * A request header the caller may set to declare a non-idempotent request safe to retry; it is
 * removed before the request leaves. Requests carrying an `Idempotency-Key` header
 * (draft-ietf-httpapi-idempotency-key-header) are treated as idempotent too.
 */
export const IDEMPOTENT_HEADER = 'x-mesh-idempotent';

type HeadersInput =
  | Record<string, string | string[] | number | undefined | null>
  | readonly (string | Buffer)[]
  | Iterable<readonly [string, string | string[] | undefined]>
  | null
  | undefined;

/** Lower-case header names; flat `[k, v, k, v]` arrays, pair iterables and records accepted. */
export function normalizeHeaders(input: HeadersInput): RequestHeaders {
  const out: RequestHeaders = {};
  if (input == null) return out;
  const add = (k: string, v: string): void => {
    const key = k.toLowerCase();
    const prev = out[key];
    if (prev === undefined) out[key] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[key] = [prev, v];
  };
  if (Array.isArray(input)) {
    if (input.length > 0 && Array.isArray(input[0])) {
      for (const pair of input as unknown as Array<[string, string]>) add(String(pair[0]), String(pair[1]));
    } else {
      for (let i = 0; i + 1 < input.length; i += 2) add(String(input[i]), String(input[i + 1]));
    }
    return out;
  }
  if (typeof (input as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [k, v] of input as Iterable<readonly [string, string | string[] | undefined]>) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const x of v) add(k, x);
      else add(k, v);
    }
    return out;
  }
  for (const k in input as Record<string, unknown>) {
    const v = (input as Record<string, unknown>)[k];
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) for (const x of v) add(k, String(x));
    else add(k, String(v));
  }
  return out;
}

/** Build the immutable request every filter sees. */
export function buildRequest(
  method: string,
  origin: string,
  path: string,
  rawHeaders: RequestHeaders,
  body: unknown,
  idempotentOption: boolean | undefined,
): MeshRequest {
  let headers = rawHeaders;
  let declared = idempotentOption;
  const flag = headers[IDEMPOTENT_HEADER];
  if (flag !== undefined) {
    headers = { ...headers };
    delete headers[IDEMPOTENT_HEADER];
    declared ??= String(flag).toLowerCase() === 'true' || flag === '1';
  }
  const m = method.toUpperCase();
  const idempotent = declared ?? (isIdempotentMethod(m) || headers['idempotency-key'] !== undefined);
  const b = (body ?? null) as RequestBody;
  const bodyReplayable = isReplayableBody(b);
  return {
    method: m,
    origin,
    path,
    headers,
    body: b,
    idempotent,
    bodyReplayable,
    replayable: idempotent && bodyReplayable,
  };
}

/** undici's body mixin, added to synthetic bodies so `mesh.request` results always have it. */
export interface BodyMixin {
  text(): Promise<string>;
  json(): Promise<unknown>;
  arrayBuffer(): Promise<ArrayBuffer>;
  dump(opts?: { limit?: number }): Promise<void>;
}

export function withBodyMixin(body: Readable): Readable & BodyMixin {
  const b = body as Readable & Partial<BodyMixin>;
  if (typeof b.text === 'function' && typeof b.json === 'function') return b as Readable & BodyMixin;
  const collect = async (): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
    return Buffer.concat(chunks);
  };
  b.text = async () => (await collect()).toString('utf8');
  b.json = async () => JSON.parse((await collect()).toString('utf8')) as unknown;
  b.arrayBuffer = async () => {
    const buf = await collect();
    return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  };
  b.dump = async () => {
    body.resume();
  };
  return b as Readable & BodyMixin;
}

/**
 * What the call path checks of an origin before a mesh service is named from it: the form undici's
 * Agent takes, and whether it asks for TLS (refused for mesh endpoints: never sent as plaintext).
 */

import { failDispatch, MeshError, undiciErrors } from '@proxyless/core';
import type { Dispatcher } from 'undici';
import { CallHandler } from './call-handler.js';

/**
 * Refuse an origin with a path, query or fragment (`http://api/base`), as undici's `Agent` does
 * when it builds the origin's pool (`parseOrigin`): the mesh would otherwise name the service and
 * send the request without the path. The WHATWG parser runs only past the plain `scheme://host`.
 */
export function assertOrigin(origin: string): void {
  const start = origin.indexOf('://');
  if (start < 0) return;
  if (!origin.startsWith('http://') && !origin.startsWith('https://')) {
    // Any other scheme (`ftp://svc`, or http in capitals, which the URL parser lower-cases): as
    // undici's Agent, which refuses every scheme but http and https before anything is sent.
    const { protocol } = new URL(origin);
    if (protocol !== 'http:' && protocol !== 'https:') {
      throw new undiciErrors.InvalidArgumentError(
        'Invalid URL protocol: the URL must start with `http:` or `https:`.',
      );
    }
  }
  let i = start + 3;
  while (i < origin.length) {
    const c = origin.charCodeAt(i);
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */ || c === 92 /* \ */) break;
    i++;
  }
  if (i === origin.length || (i === origin.length - 1 && origin.charCodeAt(i) === 47)) return;
  const u = new URL(origin);
  if (u.pathname !== '/' || u.search || u.hash) throw new undiciErrors.InvalidArgumentError('invalid url');
}

/**
 * Whether an origin asks for TLS: its scheme is `https` as undici reads it through the WHATWG URL
 * parser, which ignores the scheme's case (`HTTPS://api`), leading blanks and any tab or newline.
 * The usual `http://` origin is answered without looking further.
 */
export function asksForTls(origin: string): boolean {
  if (origin.startsWith('http://')) return false;
  if (origin.startsWith('https:')) return true;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the C0 controls the URL parser strips.
  const scheme = origin.replace(/[\t\n\r]/g, '').replace(/^[\u0000-\u0020]+/, '');
  return scheme.length > 5 && scheme.slice(0, 6).toLowerCase() === 'https:';
}

/**
 * Refuse an https origin for a name the mesh owns (a destination or a routing chain): no TLS to
 * mesh endpoints is configured, and the request is never sent as plaintext (#9.1).
 */
export function refuseTls(handler: Dispatcher.DispatchHandler, origin: string, service: string): void {
  failDispatch(
    new CallHandler(handler),
    new MeshError(
      'MESH_CONFIG_INVALID',
      `"${origin}" asks for TLS to mesh service "${service}", but no TLS is configured for mesh endpoints; refusing to send it as plaintext (use http://${service})`,
      { details: { field: 'origin', value: origin, service } },
    ),
  );
}

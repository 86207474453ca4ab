/**
 * Endpoint lists that never apply: endpoints are not layered — the first source that knows a
 * service gives them (code options, `MESH_ENDPOINTS_*`, the document, the registry) — so a list a
 * source before it shadows is warned, not silently lost.
 */
import type { Env } from '@proxyless/core';
import { ENDPOINTS_PREFIX, envEndpointsSuffix } from '@proxyless/discovery';
import type { DocumentLayers } from './layers.js';
import type { Warning } from './store.js';

/** What comes before the document: code options' lists and the environment's. */
export interface EndpointSources {
  /** Services whose code options give endpoints, by service key. */
  readonly optionsEndpoints: ReadonlySet<string>;
  /** Service key → the name as `options.services` spells it. */
  readonly optionsSpelled: ReadonlyMap<string, string>;
  /** `MESH_ENDPOINTS_*` lists, by variable suffix. */
  readonly envEndpoints: ReadonlyMap<string, unknown>;
  readonly env: Env;
}

const WINS =
  'the first source that knows a service wins (code options, MESH_ENDPOINTS_*, the document, the registry)';

/** The warnings of every shadowed list: the document's (when there is one) and the variables'. */
export function shadowedEndpoints(sources: EndpointSources, doc: DocumentLayers | undefined): Warning[] {
  const out: Warning[] = [];
  if (sources.optionsEndpoints.size === 0) {
    // Nothing comes before the document (the usual case): no list to look up.
    if (sources.envEndpoints.size === 0 || doc === undefined) return out;
  } else shadowedVariables(sources, out);
  if (doc !== undefined) shadowedDocumentLists(sources, doc, out);
  return out;
}

/** The `MESH_ENDPOINTS_*` variables code options shadow (code comes first). */
function shadowedVariables(sources: EndpointSources, out: Warning[]): void {
  if (sources.envEndpoints.size === 0) return;
  for (const key of sources.optionsEndpoints) {
    const spelled = sources.optionsSpelled.get(key) ?? key;
    const name = `${ENDPOINTS_PREFIX}${envEndpointsSuffix(spelled)}`;
    const raw = sources.env[name];
    if (raw === undefined || raw.trim() === '') continue;
    out.push({
      field: name,
      expected: `endpoints that apply: createMesh({ services: { ${spelled}: { endpoints } } }) gives this service's endpoints, and ${WINS}; this variable is not used`,
      value: raw,
      service: key,
    });
  }
}

/** The document's lists that code options or `MESH_ENDPOINTS_*` shadow (a local override of the shared file). */
function shadowedDocumentLists(sources: EndpointSources, doc: DocumentLayers, out: Warning[]): void {
  for (const key of doc.endpoints.keys()) {
    const spelled = doc.spelled.get(key) ?? key;
    const suffix = envEndpointsSuffix(spelled);
    const by = sources.optionsEndpoints.has(key)
      ? `createMesh({ services: { ${sources.optionsSpelled.get(key) ?? spelled}: { endpoints } } })`
      : sources.envEndpoints.has(suffix)
        ? `${ENDPOINTS_PREFIX}${suffix}`
        : undefined;
    if (by === undefined) continue;
    out.push({
      field: `services.${spelled}.endpoints`,
      expected: `endpoints that apply: ${by} gives this service's endpoints, and ${WINS}; this list is not used`,
      value: (doc.endpoints.get(key) ?? [])
        .map((e) => (e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`))
        .join(','),
      service: key,
    });
  }
}

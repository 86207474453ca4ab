/** [what, document, path named, value quoted] */
export type DocCase = [string, unknown, string, unknown];

/** A document with one service, `api`, holding `policy`. */
export const svc = (policy: Record<string, unknown>): unknown => ({ services: { api: policy } });

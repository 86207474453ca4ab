import type { Disposable, Resolver, ResolverUpdate } from '@proxyless/core';

/** Records every update of one watch and lets a test await the next one (a real event). */
export interface UpdateLog {
  readonly all: ResolverUpdate[];
  /** The next update not yet taken (already received, or the next to arrive). */
  next(): Promise<ResolverUpdate>;
  /** Skip updates until one satisfies `ok`; fails after `limit` updates. */
  until(ok: (u: ResolverUpdate) => boolean, limit?: number): Promise<ResolverUpdate>;
  readonly watch: Disposable;
}

export function watchUpdates(resolver: Resolver, service: string): UpdateLog {
  const all: ResolverUpdate[] = [];
  let taken = 0;
  let waiter: (() => void) | undefined;
  const watch = resolver.watch(service, (u) => {
    all.push(u);
    const w = waiter;
    waiter = undefined;
    w?.();
  });
  const next = async (): Promise<ResolverUpdate> => {
    while (taken >= all.length) {
      await new Promise<void>((resolve) => {
        waiter = resolve;
      });
    }
    return all[taken++]!;
  };
  return {
    all,
    watch,
    next,
    async until(ok, limit = 20) {
      for (let i = 0; i < limit; i++) {
        const u = await next();
        if (ok(u)) return u;
      }
      throw new Error(`no matching update within ${limit} updates: ${JSON.stringify(all.map(summary))}`);
    },
  };
}

/** `address:port(weight)` list of an update, sorted; `error:<code>` for failures. */
export function summary(u: ResolverUpdate): string[] | string {
  if (u.kind === 'error') return `error:${u.error.code}`;
  return u.set.endpoints.map((e) => `${e.id}(${e.weight})`).sort();
}

import type { Disposable, Endpoint, Resolver, ResolverUpdate } from '@proxyless/core';

/** Records a watch's updates and waits (bounded) for one that satisfies a condition. */
export interface UpdateRecorder extends Disposable {
  readonly updates: ResolverUpdate[];
  readonly last: ResolverUpdate | undefined;
  until(predicate: (u: ResolverUpdate) => boolean, what: string, timeoutMs?: number): Promise<ResolverUpdate>;
}

export function record(resolver: Resolver, service: string): UpdateRecorder {
  const updates: ResolverUpdate[] = [];
  const waiters = new Set<() => void>();
  const sub = resolver.watch(service, (u) => {
    updates.push(u);
    for (const w of [...waiters]) w();
  });
  return {
    updates,
    get last() {
      return updates.at(-1);
    },
    dispose: () => sub.dispose(),
    until(predicate, what, timeoutMs = 10_000) {
      const seen = updates.at(-1);
      if (seen !== undefined && predicate(seen)) return Promise.resolve(seen);
      return new Promise<ResolverUpdate>((resolve, reject) => {
        const check = (): void => {
          const u = updates.at(-1);
          if (u !== undefined && predicate(u)) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(u);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${what}; last update: ${describe(updates.at(-1))}`,
            ),
          );
        }, timeoutMs);
        waiters.add(check);
      });
    },
  };
}

export function describe(u: ResolverUpdate | undefined): string {
  if (u === undefined) return 'none';
  if (u.kind === 'endpoints') return `endpoints [${ids(u.set.endpoints).join(', ')}] v${u.set.version}`;
  return `error ${u.error.code}: ${u.error.message} (lastGood: ${u.lastGood ? `[${ids(u.lastGood.endpoints).join(', ')}] stale=${u.lastGood.stale}` : 'none'})`;
}

export function ids(endpoints: readonly Endpoint[]): string[] {
  return endpoints.map((e) => e.id).sort();
}

/** The endpoint ids of an update (`endpoints` kind), else undefined. */
export function endpointIds(u: ResolverUpdate): string[] | undefined {
  return u.kind === 'endpoints' ? ids(u.set.endpoints) : undefined;
}

export function sameIds(u: ResolverUpdate, expected: string[]): boolean {
  const got = endpointIds(u);
  return got !== undefined && got.join(',') === [...expected].sort().join(',');
}

let counter = 0;
/** A service name unique within the test run (tests share one etcd). */
export function uniqueService(base: string): string {
  counter++;
  return `${base}-${process.pid}-${counter}`;
}

import { rm } from 'node:fs/promises';
import type { LogFields, Logger } from '@proxyless/core';
import { seededRandom } from '@proxyless/core/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createEtcdResolver,
  type EtcdPrefixPair,
  type EtcdResolver,
  watchEtcdPrefix,
} from '../../../packages/discovery/src/etcd/index.js';
import { type EtcdServer, etcdBinary, startEtcd } from '../../support/etcd-server.js';
import { record, sameIds, uniqueService } from './helpers.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

const bin = etcdBinary();
const PREFIX = '/proxyless/services/';

type Line = { level: string; message: string; fields?: LogFields };

function memoryLogger(): Logger & {
  lines: Line[];
  /** Resolves once a line whose message includes `text` was logged (bounded). */
  logged(text: string, timeoutMs?: number): Promise<void>;
} {
  const lines: Line[] = [];
  const waiters = new Set<() => void>();
  const at =
    (level: string) =>
    (message: string, fields?: LogFields): void => {
      lines.push({ level, message, ...(fields ? { fields } : {}) });
      for (const w of [...waiters]) w();
    };
  const logged = (text: string, timeoutMs = 10_000): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (!lines.some((l) => l.message.includes(text))) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no log line with "${text}" after ${timeoutMs} ms`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return { lines, logged, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describe.skipIf(!bin.available)(`etcd resolver outages against a real etcd ${bin.skipReason}`, () => {
  let etcd: EtcdServer;
  let proxy: TcpProxy | undefined;
  const resolvers: EtcdResolver[] = [];
  const newResolver = (endpoint: string, logger?: Logger) => {
    const r = createEtcdResolver({
      endpoints: [endpoint],
      backoff: { baseMs: 20, capMs: 200 },
      random: seededRandom(11),
      ...(logger ? { logger } : {}),
    });
    resolvers.push(r);
    return r;
  };
  const put = (service: string, id: string, port: number) =>
    etcd.put(`${PREFIX}${service}/${id}`, JSON.stringify({ address: '10.0.0.1', port }));

  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterEach(async () => {
    await Promise.all(resolvers.splice(0).map((r) => r.close()));
    await proxy?.close();
    proxy = undefined;
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('keeps the last good set (stale) while etcd is stopped and recovers after it restarts', async () => {
    const svc = uniqueService('outage');
    await put(svc, 'a', 80);
    await put(svc, 'b', 81);
    const r = newResolver(etcd.endpoint);
    const rec = record(r, svc);
    await rec.until((u) => sameIds(u, ['a', 'b']), 'a, b');

    await etcd.halt();
    const failed = await rec.until((u) => u.kind === 'error', 'an error update while etcd is down');
    expect(failed.kind === 'error' && failed.error.code).toBe('MESH_REGISTRY_UNAVAILABLE');
    expect(failed.kind === 'error' && failed.lastGood?.stale).toBe(true);
    expect(failed.kind === 'error' && failed.lastGood?.endpoints.map((e) => e.id).sort()).toEqual(['a', 'b']);
    expect(r.current(svc)?.stale).toBe(true);
    expect(r.current(svc)?.endpoints).toHaveLength(2);
    // No update ever emptied the set.
    expect(
      rec.updates.every(
        (u) => (u.kind === 'endpoints' ? u.set.endpoints.length : u.lastGood?.endpoints.length) === 2,
      ),
    ).toBe(true);

    await etcd.resume();
    const back = await rec.until(
      (u) => u.kind === 'endpoints' && !u.set.stale,
      'a fresh set after the restart',
      20_000,
    );
    expect(sameIds(back, ['a', 'b'])).toBe(true);
    expect(r.current(svc)?.stale).toBe(false);
    await put(svc, 'c', 82);
    await rec.until((u) => sameIds(u, ['a', 'b', 'c']), 'a, b, c through the renewed watch', 20_000);
    rec.dispose();
  });

  it('first answer during an outage is an error without a last good set, then endpoints once etcd is back', async () => {
    const svc = uniqueService('cold');
    await put(svc, 'a', 80);
    await etcd.halt();
    try {
      const r = newResolver(etcd.endpoint);
      const rec = record(r, svc);
      const u = await rec.until((x) => x.kind === 'error', 'an error update');
      expect(u.kind === 'error' && u.lastGood).toBeUndefined();
      await etcd.resume();
      await rec.until((x) => sameIds(x, ['a']), 'a after etcd started', 20_000);
      rec.dispose();
    } finally {
      await etcd.resume();
    }
  });

  it('resumes a broken watch from the last seen revision and replays the changes it missed', async () => {
    proxy = await startTcpProxy(etcd.clientPort);
    const svc = uniqueService('resume');
    await put(svc, 'a', 80);
    const logger = memoryLogger();
    const r = newResolver(proxy.endpoint, logger);
    const rec = record(r, svc);
    await rec.until((u) => sameIds(u, ['a']), 'a');
    proxy.cut();
    await rec.until((u) => u.kind === 'error', 'an error while the connection is cut');
    await put(svc, 'b', 81);
    await etcd.del(`${PREFIX}${svc}/a`);
    const sinceRestore = rec.updates.length;
    proxy.restore();
    await rec.until(
      (u) => sameIds(u, ['b']) && u.kind === 'endpoints' && !u.set.stale,
      'b only, fresh',
      20_000,
    );
    expect(logger.lines.some((l) => l.message.includes('compacted'))).toBe(false);
    // Once the watch is back, the set of before the break is never offered as fresh: it is fresh
    // only once the changes missed meanwhile are in it.
    const fresh = rec.updates
      .slice(sinceRestore)
      .filter((u) => u.kind === 'endpoints' && !u.set.stale)
      .map((u) => (u.kind === 'endpoints' ? u.set.endpoints.map((e) => e.id).sort() : []));
    expect(fresh).toEqual([['b']]);
    rec.dispose();
  });

  it('lists again when the revision to resume from was compacted', async () => {
    proxy = await startTcpProxy(etcd.clientPort);
    const svc = uniqueService('compact');
    await put(svc, 'a', 80);
    const logger = memoryLogger();
    const r = newResolver(proxy.endpoint, logger);
    const rec = record(r, svc);
    await rec.until((u) => sameIds(u, ['a']), 'a');
    proxy.cut();
    await rec.until((u) => u.kind === 'error', 'an error while the connection is cut');
    await put(svc, 'b', 81);
    await put(svc, 'c', 82);
    await etcd.del(`${PREFIX}${svc}/a`);
    await etcd.compact();
    proxy.restore();
    await rec.until(
      (u) => sameIds(u, ['b', 'c']) && u.kind === 'endpoints' && !u.set.stale,
      'b, c after the re-list',
      20_000,
    );
    // The resumed watch is cancelled for its compacted revision (the set above may come first,
    // from the listing that follows any resumed watch).
    await logger.logged('compacted');
    // The watch that follows the re-list is live.
    await put(svc, 'd', 83);
    await rec.until((u) => sameIds(u, ['b', 'c', 'd']), 'b, c, d', 20_000);
    rec.dispose();
  });
  it('starts over from a listing when etcd comes back wiped (its revision went back)', async () => {
    // An etcd rebuilt empty on the same address: the resumed watch waited for a revision the new
    // cluster had not reached, and the old set was offered as fresh for good.
    const svc = uniqueService('wiped');
    for (let i = 0; i < 20; i++) await put(svc, 'old', 80 + i);
    const r = newResolver(etcd.endpoint);
    const rec = record(r, svc);
    await rec.until((u) => sameIds(u, ['old']), 'old');
    await etcd.halt();
    await rec.until((u) => u.kind === 'error', 'an error update while etcd is down');
    await rm(etcd.dataDir, { recursive: true, force: true });
    await etcd.resume();
    await put(svc, 'new', 90);
    const back = await rec.until((u) => sameIds(u, ['new']), 'the new cluster’s set', 20_000);
    expect(back.kind === 'endpoints' && back.set.stale).toBe(false);
    await put(svc, 'new2', 91);
    await rec.until((u) => sameIds(u, ['new', 'new2']), 'a change on the new cluster', 20_000);
    rec.dispose();
  });

  it('the config prefix watch follows an etcd that comes back wiped, and hands over an unchanged listing once', async () => {
    // The routing source's watch resumed from its last revision after a break: on a rebuilt etcd
    // it waited for a revision the new cluster had not reached and missed every change until then.
    const prefix = `/${uniqueService('cfg')}/`;
    for (let i = 0; i < 20; i++) await etcd.put(`${prefix}a`, `old-${i}`);
    const snapshots: { keys: string[]; values: string[] }[] = [];
    const waiters = new Set<() => void>();
    const errors: string[] = [];
    const show = (pairs: readonly EtcdPrefixPair[]) => ({
      keys: pairs.map((p) => p.key.slice(prefix.length)).sort(),
      values: pairs.map((p) => Buffer.from(p.value).toString()).sort(),
    });
    const until = (pred: (s: { keys: string[]; values: string[] }) => boolean, what: string) =>
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (!snapshots.some(pred)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no snapshot with ${what} in 20 s; got ${JSON.stringify(snapshots)}`));
        }, 20_000);
        waiters.add(check);
        check();
      });
    const w = watchEtcdPrefix({
      endpoints: [etcd.endpoint],
      prefix,
      coalesceMs: 0,
      backoff: { baseMs: 20, capMs: 200 },
      random: seededRandom(5),
      onSnapshot: (pairs) => {
        snapshots.push(show(pairs));
        for (const f of [...waiters]) f();
      },
      onError: (e) => errors.push(e.code),
    });
    try {
      await until((s) => s.values.join() === 'old-19', 'old-19');
      // A break with nothing changed: the listing that follows hands nothing over.
      await etcd.halt();
      await etcd.resume();
      await etcd.put(`${prefix}b`, 'same-cluster');
      await until((s) => s.keys.join() === 'a,b', 'a and b');
      expect(errors.length).toBeGreaterThan(0);
      expect(snapshots.map((s) => s.keys.join())).toEqual(['a', 'a,b']);

      await etcd.halt();
      await rm(etcd.dataDir, { recursive: true, force: true });
      await etcd.resume();
      await etcd.put(`${prefix}c`, 'new-cluster');
      await until((s) => s.keys.join() === 'c', 'the new cluster’s c alone');
      await etcd.put(`${prefix}d`, 'next');
      await until((s) => s.keys.join() === 'c,d', 'a change on the new cluster');
    } finally {
      w.dispose();
    }
  });
});

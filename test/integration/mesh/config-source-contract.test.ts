/**
 * A config source a platform team writes themselves (a KV store, a CRD watcher), misbehaving as
 * real sources do. Defects this pins down:
 * - a document whose reading throws (a getter, a revoked proxy, a cycle) escaped the mesh: no
 *   `config_rejected`, versions queued behind it dropped, `createConfigSource().update()` crashed
 *   the process, and at `createMesh` a raw `Error` instead of `MESH_CONFIG_INVALID`;
 * - a version delivered while `createMesh` subscribed lost its warnings (the first version's fired);
 * - the version in force delivered again with its keys in another order was rejected as new content;
 * - a source edited its delivered document in place and defeated the equal-version check;
 * - after a failed `reload()`, a successful one with nothing new kept rejecting with the old error
 *   and the endpoint sets stayed stale;
 * - a version numbered 0, negative or fractional marked the endpoint sets stale and lost its number.
 */
import {
  type ConfigSource,
  type ConfigVersion,
  createConfigSource,
  createMesh,
  type Disposable,
  type Mesh,
  type MeshError,
  type MeshEvent,
} from 'proxyless';
import { afterEach, describe, expect, it } from 'vitest';

/** A hand-written source backed by a "KV store", following the `ConfigSource` interface. */
class KvSource implements ConfigSource {
  readonly name = 'kv';
  #current: ConfigVersion;
  readonly #versions = new Set<(v: ConfigVersion) => void>();
  readonly #errors = new Set<(e: MeshError) => void>();
  reloadImpl: () => Promise<void> = () => Promise.resolve();
  onSubscribe?: (listener: (v: ConfigVersion) => void) => void;

  constructor(document: unknown, version = 1) {
    this.#current = { source: this.name, version, document };
  }
  current(): ConfigVersion {
    return this.#current;
  }
  onVersion(listener: (v: ConfigVersion) => void): Disposable {
    this.#versions.add(listener);
    this.onSubscribe?.(listener);
    return { dispose: () => this.#versions.delete(listener) };
  }
  onError(listener: (e: MeshError) => void): Disposable {
    this.#errors.add(listener);
    return { dispose: () => this.#errors.delete(listener) };
  }
  push(version: number, document: unknown): void {
    this.#current = { source: this.name, version, document };
    for (const l of [...this.#versions]) l(this.#current);
  }
  /** Deliver an older version again (a stream replaying it late) without changing `current()`. */
  replay(version: number, document: unknown): void {
    for (const l of [...this.#versions]) l({ source: this.name, version, document });
  }
  fail(error: MeshError): void {
    for (const l of [...this.#errors]) l(error);
  }
  reload(): Promise<void> {
    return this.reloadImpl();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const meshes: Mesh[] = [];
afterEach(async () => {
  await Promise.all(meshes.splice(0).map((m) => m.close()));
});

function start(source: ConfigSource): { mesh: Mesh; events: MeshEvent[] } {
  const mesh = createMesh({
    env: {},
    passthrough: false,
    configSource: source,
    telemetry: { admin: { port: 0 } },
  });
  meshes.push(mesh);
  const events: MeshEvent[] = [];
  mesh.onEvent((e) => {
    if (e.type.startsWith('config_')) events.push(e);
  });
  return { mesh, events };
}

/** Whether the document's endpoint sets are marked stale, as `/config_dump` says. */
async function stale(mesh: Mesh): Promise<boolean> {
  const url = await mesh.admin();
  const dump = (await (await fetch(`${url}/config_dump`)).json()) as { document: { stale: boolean } };
  return dump.document.stale;
}

const doc = (timeout: string, extra: Record<string, unknown> = {}) => ({
  services: { pay: { endpoints: '127.0.0.1:1', timeout, ...extra } },
});

function throwingDocument(): unknown {
  const d = doc('3s');
  Object.defineProperty(d.services.pay, 'retry', {
    enumerable: true,
    get() {
      throw new Error('getter boom');
    },
  });
  return d;
}

function cyclicDocument(): unknown {
  const entry: Record<string, unknown> = { Kind: 'service-defaults', Name: 'pay' };
  entry.Meta = entry;
  return { ...doc('3s'), configEntries: [entry] };
}

const kinds = [
  ['a getter that throws', throwingDocument],
  ['a cycle', cyclicDocument],
] as const;

describe('a document whose reading throws', () => {
  it.each(kinds)('(%s) is a rejected version: the last good one stays, later versions apply', (_, bad) => {
    const source = new KvSource(doc('1s'));
    const { mesh, events } = start(source);
    // Pushed from a listener of the previous version's event: queued behind it.
    mesh.onEvent((e) => {
      if (e.type === 'config_applied' && e.version === 2) {
        source.push(3, bad());
        source.push(4, doc('4s'));
      }
    });
    expect(() => source.push(2, doc('2s'))).not.toThrow();
    expect(events.map((e) => `${e.type} ${'version' in e ? e.version : ''}`)).toEqual([
      'config_applied 2',
      'config_rejected 3',
      'config_applied 4',
    ]);
    const rejected = events[1] as Extract<MeshEvent, { type: 'config_rejected' }>;
    expect(rejected.error.code).toBe('MESH_CONFIG_INVALID');
    expect(rejected.error.message).toContain('version 3');
    expect(rejected.error.message).toContain('cannot be read as JSON data');
    expect(mesh.config('pay').resilience.timeoutMs).toBe(4000);
  });

  it.each(kinds)('(%s) through createConfigSource().update() does not throw out of it', async (_, bad) => {
    const source = createConfigSource('kv', doc('1s'));
    const { mesh, events } = start(source);
    expect(() => source.update(bad() as never)).not.toThrow();
    // Whatever the source does after update() returns (a microtask), nothing escapes.
    await Promise.resolve();
    expect(events.map((e) => e.type)).toEqual(['config_rejected']);
    expect(mesh.config('pay').resilience.timeoutMs).toBe(1000);
  });

  it.each(kinds)('(%s) at createMesh is MESH_CONFIG_INVALID naming the document', (_, bad) => {
    const source = new KvSource(bad());
    expect(() => createMesh({ env: {}, passthrough: false, configSource: source })).toThrow(
      expect.objectContaining({
        code: 'MESH_CONFIG_INVALID',
        message: expect.stringContaining('cannot be read as JSON data'),
      }),
    );
  });
});

describe("the mesh's own copy of each version (probe31 sources 1, 3, 6)", () => {
  it('keeps the provenance of the version in force when the source edits the object it delivered', () => {
    // A control-plane client that keeps one document, patches it in place and delivers it again.
    const live = {
      defaults: {} as Record<string, unknown>,
      services: { pay: { endpoints: '127.0.0.1:1', circuitBreaker: {} as Record<string, unknown> } },
    };
    const source = new KvSource(structuredClone(live));
    const { mesh, events } = start(source);
    live.defaults.timeout = '2s';
    live.services.pay.circuitBreaker.volumeThreshold = 7;
    source.push(2, live);
    delete live.defaults.timeout;
    delete live.services.pay.circuitBreaker.volumeThreshold;
    live.services.pay.circuitBreaker.resetTimeout = 'soon';
    source.push(3, live);
    expect(events.map((e) => `${e.type} ${'version' in e ? e.version : ''}`)).toEqual([
      'config_applied 2',
      'config_rejected 3',
    ]);
    const config = mesh.config('pay');
    expect(config.resilience.timeoutMs).toBe(2000);
    expect(config.resilience.circuitBreaker?.volumeThreshold).toBe(7);
    expect(config.sources).toEqual({
      timeout: { layer: 'kv.defaults', version: 2 },
      'circuitBreaker.volumeThreshold': { layer: 'kv.services', version: 2 },
    });
  });

  it.each([
    ['a Map of services', () => ({ services: new Map([['pay', { endpoints: '127.0.0.1:1' }]]) }), 'services'],
    [
      'a Set',
      () => ({ services: { pay: { endpoints: '127.0.0.1:1', retry: new Set([1]) } } }),
      'services.pay.retry',
    ],
    [
      'a class instance',
      () => {
        class Entry {
          get endpoints(): string {
            return '127.0.0.1:1';
          }
        }
        return { services: { pay: new Entry() } };
      },
      'services.pay',
    ],
  ] as const)(
    'refuses %s (JSON would write it as {}): rejected naming where, the last good one stays',
    (_, bad, at) => {
      const source = new KvSource(doc('1s'));
      const { mesh, events } = start(source);
      source.push(2, bad());
      expect(events.map((e) => e.type)).toEqual(['config_rejected']);
      const rejected = events[0] as Extract<MeshEvent, { type: 'config_rejected' }>;
      expect(rejected.error.message).toContain('cannot be read as JSON data');
      expect(rejected.error.message).toContain(`${at} is a`);
      expect(mesh.config('pay').resilience.timeoutMs).toBe(1000);
    },
  );

  it('reads a getter once per delivery: what is applied is what is kept', () => {
    let reads = 0;
    const values = [7, 1];
    const v2 = doc('1s');
    Object.defineProperty(v2.services.pay, 'retry', {
      enumerable: true,
      get() {
        return { maxRetries: values[reads++] ?? 1 };
      },
    });
    const source = new KvSource(doc('1s'));
    const { mesh } = start(source);
    source.push(2, v2);
    expect(reads).toBe(1);
    expect(mesh.config('pay').resilience.retry?.maxRetries).toBe(7);
  });
});

describe('redelivery of the version in force', () => {
  it('with its keys in another order is the same version: ignored, and the source is fresh again', async () => {
    const v3 = {
      services: { pay: { endpoints: '127.0.0.1:1', timeout: '1s' }, ship: { endpoints: '127.0.0.1:2' } },
    };
    const relisted = {
      services: { ship: { endpoints: '127.0.0.1:2' }, pay: { timeout: '1s', endpoints: '127.0.0.1:1' } },
    };
    const source = new KvSource(v3, 3);
    const { mesh, events } = start(source);
    source.fail(new Error('watch connection lost') as MeshError);
    expect(await stale(mesh)).toBe(true);
    source.push(3, relisted);
    expect(events.map((e) => e.type)).toEqual(['config_rejected']);
    expect(await stale(mesh)).toBe(false);
    await mesh.reloadConfig();
  });

  it('of an object the source changed after delivering it is new content under an old number', () => {
    const v2 = doc('1s');
    const source = new KvSource(doc('1s'));
    const { mesh, events } = start(source);
    source.push(2, v2);
    // The source edits the object it delivered, and delivers it again under the same number.
    v2.services.pay.timeout = '7s';
    source.push(2, v2);
    expect(events.map((e) => e.type)).toEqual(['config_applied', 'config_rejected']);
    expect(mesh.config('pay').resilience.timeoutMs).toBe(1000);
  });
});

describe('a source recovering', () => {
  it('a failed reload() is over when one succeeds with nothing new: resolved, endpoint sets fresh', async () => {
    const source = new KvSource(doc('1s'));
    const { mesh } = start(source);
    source.reloadImpl = () => Promise.reject(new Error('kv unreachable'));
    await expect(mesh.reloadConfig()).rejects.toThrow('kv unreachable');
    expect(await stale(mesh)).toBe(true);
    source.reloadImpl = () => Promise.resolve();
    await mesh.reloadConfig();
    expect(await stale(mesh)).toBe(false);
    expect(mesh.config('pay').resilience.timeoutMs).toBe(1000);
  });

  it('a rejected version still the source’s latest keeps reloadConfig() rejecting', async () => {
    const source = new KvSource(doc('1s'));
    const { mesh } = start(source);
    source.push(2, doc('1s', { retry: { maxRetries: 11 } }));
    await expect(mesh.reloadConfig()).rejects.toThrow('retry.maxRetries');
  });

  it('a late retransmission of an older version does not make reloadConfig() reject while the source holds the one in force (probe31 sources 4)', async () => {
    const source = new KvSource(doc('1s'));
    const { mesh, events } = start(source);
    source.push(2, doc('2s'));
    source.push(3, doc('3s'));
    // The control plane's stream replays v2 late; what the source holds is still v3.
    source.replay(2, doc('2s'));
    expect(events.map((e) => `${e.type} ${'version' in e ? e.version : ''}`)).toEqual([
      'config_applied 2',
      'config_applied 3',
      'config_rejected 2',
    ]);
    await expect(mesh.reloadConfig()).resolves.toBeUndefined();
    expect(mesh.config('pay').resilience.timeoutMs).toBe(3000);
    // A source that itself went back to an older version still makes it reject.
    source.push(2, doc('2s'));
    await expect(mesh.reloadConfig()).rejects.toThrow('a version newer than 3');
  });

  it('reloadConfig() after close() is MESH_CLOSED and asks nothing of the source (probe31 sources 9)', async () => {
    const source = new KvSource(doc('1s'));
    let reloads = 0;
    source.reloadImpl = () => {
      reloads++;
      return Promise.resolve();
    };
    const { mesh } = start(source);
    await mesh.close();
    await expect(mesh.reloadConfig()).rejects.toMatchObject({ code: 'MESH_CLOSED' });
    expect(reloads).toBe(0);
  });
});

describe('a version numbered wrong', () => {
  it.each([0, -1, 1.5])(
    '(%s) is refused as one out of order: endpoint sets not stale, its number told',
    async (n) => {
      const source = new KvSource(doc('1s'), 2);
      const { mesh, events } = start(source);
      source.push(n, doc('9s'));
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ type: 'config_rejected', version: n });
      expect(await stale(mesh)).toBe(false);
      expect(mesh.config('pay').resilience.timeoutMs).toBe(1000);
    },
  );
});

describe('warnings at start', () => {
  const warned = (perTry: string) => ({
    services: { pay: { endpoints: '127.0.0.1:1', timeout: '2s', perTryTimeout: perTry } },
  });
  it.each([
    ['1s', '5s', ['perTryTimeout']],
    ['5s', '1s', []],
  ] as const)(
    'of a version the source delivers while createMesh subscribes (first %s, then %s) are those in force',
    async (first, second, expected) => {
      const source = new KvSource(warned(first));
      source.onSubscribe = (listener) => listener({ source: 'kv', version: 2, document: warned(second) });
      const { mesh, events } = start(source);
      await Promise.resolve();
      await Promise.resolve();
      expect(mesh.config('pay').sources.perTryTimeout?.version).toBe(2);
      expect(events.flatMap((e) => (e.type === 'config_warning' ? [e.issue.field] : []))).toEqual(
        expected.map((f) => expect.stringContaining(f)),
      );
    },
  );
});

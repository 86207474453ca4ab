/**
 * The admin server's close() ends its connections (probe8 admin defect 1): a client polling on a
 * keep-alive connection (a scraper, the admin page's /readyz) held close() — and so the mesh's
 * close() — open, and went on being answered by the closed server.
 */
import http from 'node:http';
import { createAdminServer } from '@proxyless/telemetry';
import { Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';

function get(agent: http.Agent, url: string): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
      })
      .on('error', reject);
  });
}

describe('admin server close()', () => {
  it('ends a keep-alive connection with a scrape under way, and answers nothing more on it', async () => {
    const registry = new Registry();
    let release: (() => void) | undefined;
    const scraped = new Promise<void>((resolve) => {
      release = resolve;
    });
    let collecting: (() => void) | undefined;
    const started = new Promise<void>((resolve) => {
      collecting = resolve;
    });
    new Gauge({
      name: 'slow_gauge',
      help: 'collects when the test says so',
      registers: [registry],
      async collect() {
        collecting?.();
        await scraped;
        this.set(1);
      },
    });
    const admin = await createAdminServer({
      registry,
      services: () => [],
      configDump: () => ({}),
      ready: () => true,
      events: () => [],
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = get(agent, `${admin.url}/metrics`);
      await started;
      let closed = false;
      const closing = admin.close().then(() => {
        closed = true;
      });
      release?.();
      const answer = await first;
      expect(answer.status).toBe(200);
      expect(answer.connection).toBe('close');
      // The client polls again at once, as the admin page does: the closed server answers no more.
      const again = await get(agent, `${admin.url}/readyz`).then(
        (r) => r.status,
        (e: NodeJS.ErrnoException) => e.code,
      );
      expect(again).toBe('ECONNREFUSED');
      await closing;
      expect(closed).toBe(true);
    } finally {
      agent.destroy();
      await admin.close();
    }
  });

  it('HEAD answers with the length GET sends', async () => {
    const admin = await createAdminServer({
      registry: new Registry(),
      services: () => [],
      configDump: () => ({ a: 1 }),
      ready: () => true,
      events: () => [],
    });
    try {
      const length = (method: string) =>
        new Promise<string | undefined>((resolve, reject) => {
          http
            .request(`${admin.url}/config_dump`, { method }, (res) => {
              res.resume();
              res.on('end', () => resolve(res.headers['content-length']));
            })
            .on('error', reject)
            .end();
        });
      const get = await length('GET');
      expect(get).toBeDefined();
      expect(await length('HEAD')).toBe(get);
    } finally {
      await admin.close();
    }
  });
});

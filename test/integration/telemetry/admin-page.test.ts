/**
 * The admin page in a real headless Chromium (Debian `chromium` driven by playwright-core): it
 * loads with no network beyond the admin server, shows the services, and shows an ejection once
 * the provider reports one. Saves the screenshot docs/observability.md shows.
 */
import { fileURLToPath } from 'node:url';
import { type AdminServer, createAdminServer } from '@proxyless/telemetry';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinary } from '../../support/require-binary.js';
import { eject, type Fixture, fixture } from './admin-fixture.js';

const browserBin = requireBinary('chromium', 'Debian package chromium (apt-get install -y chromium)');
// The docs' screenshot is refreshed on request (`UPDATE_DOCS_IMAGES=1 pnpm test …`); a plain run
// writes it under .tmp so the working tree stays clean.
const SCREENSHOT = fileURLToPath(
  new URL(
    process.env.UPDATE_DOCS_IMAGES === '1' ? '../../../docs/images/admin.png' : '../../../.tmp/admin.png',
    import.meta.url,
  ),
);

describe.skipIf(!browserBin.available)(`admin page in headless Chromium ${browserBin.skipReason}`, () => {
  let admin: AdminServer;
  let browser: Browser;
  let f: Fixture;
  const external: string[] = [];

  beforeAll(async () => {
    f = fixture();
    f.ready = true;
    admin = await createAdminServer({
      services: () => f.services,
      configDump: () => f.config,
      ready: () => f.ready,
      events: () => f.events,
    });
    browser = await chromium.launch({
      executablePath: browserBin.path,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await admin?.close();
  });

  it('loads, shows the services, and shows an ejection once the provider reports one', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    page.on('request', (r) => {
      if (!r.url().startsWith(admin.url)) external.push(r.url());
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${admin.url}/?refresh=200`);
    await expect.poll(() => page.locator('h3[data-service]').count(), { timeout: 10_000 }).toBe(3);
    expect(await page.locator('h3[data-service="payments"]').textContent()).toContain('3/3 usable');
    expect(await page.locator('#ready').textContent()).toBe('ready');
    expect(await page.locator('h3[data-service="inventory"]').textContent()).toContain('stale');
    expect(await page.locator('tr[data-endpoint="10.0.0.3:8080"]').textContent()).not.toContain('ejected');
    // A routed service's targets, each under it with its own endpoints, breaker and ejections.
    const v2 = page.locator('h4[data-target="v2.web.default.default.dc1"]');
    expect(await v2.textContent()).toContain('0/1 usable');
    expect(await v2.textContent()).toContain('breaker open');
    expect(await page.locator('h4[data-target="v1.web.default.default.dc1"]').textContent()).toContain(
      '1/1 usable',
    );
    expect(await page.locator('.target tr[data-endpoint="10.0.2.2:8080"]').textContent()).toContain(
      'ejected',
    );

    eject(f, 'payments', '10.0.0.3:8080');
    const row = page.locator('tr[data-endpoint="10.0.0.3:8080"]');
    await expect.poll(() => row.textContent(), { timeout: 10_000 }).toContain('ejected');
    expect(await page.locator('h3[data-service="payments"]').textContent()).toContain('2/3 usable');
    await expect
      .poll(() => page.locator('#events li[data-type="eject"]').count(), { timeout: 10_000 })
      .toBe(1);
    expect(await page.locator('#events').textContent()).toContain(
      'eject 10.0.0.3:8080 (consecutive_5xx, 30000 ms)',
    );
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(errors).toEqual([]);
    expect(external).toEqual([]);
  });
});

import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { createMesh } from 'proxyless';
import { describe, expect, it } from 'vitest';

const dashboard = JSON.parse(readFileSync(new URL('./grafana-dashboard.json', import.meta.url), 'utf8')) as {
  panels: Array<{ type: string; targets?: Array<{ expr: string }> }>;
};

describe('the Grafana dashboard', () => {
  it('queries only series the telemetry package records', async () => {
    const registry = new Registry();
    // Every series family is registered when the mesh is created.
    await createMesh({ env: {}, metrics: { registry } }).close();
    const names = new Set<string>();
    for (const m of await registry.getMetricsAsJSON()) {
      names.add(m.name);
      if (m.type === ('histogram' as never))
        for (const s of ['_bucket', '_count', '_sum']) names.add(m.name + s);
    }
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThan(10);
    const labels = new Set(['http_request_method', 'http_response_status_code']);
    const used = new Set(
      exprs.flatMap((e) => e.match(/\b(?:mesh|http)_[a-z_]+\b/g) ?? []).filter((n) => !labels.has(n)),
    );
    for (const name of used) expect(names, name).toContain(name);
    // Every recorded series appears on the dashboard.
    for (const m of await registry.getMetricsAsJSON()) {
      expect(
        [...used].some((u) => u.startsWith(m.name)),
        m.name,
      ).toBe(true);
    }
  });
});

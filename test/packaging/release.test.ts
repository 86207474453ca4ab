import { describe, expect, it } from 'vitest';
import { satisfies, workspacePackages } from '../../scripts/packaging.js';

describe('release helpers', () => {
  it('orders the packages so that each comes after the workspace packages it depends on', () => {
    const names = workspacePackages().map((p) => p.name);
    expect(names[0]).toBe('@proxyless/core');
    expect(names.at(-1)).toBe('proxyless');
    for (const [i, p] of workspacePackages().entries()) {
      for (const dep of Object.keys({ ...p.manifest.dependencies, ...p.manifest.peerDependencies })) {
        const at = names.indexOf(dep);
        if (at >= 0) expect(at).toBeLessThan(i);
      }
    }
  });

  it('checks internal ranges as npm would for ^ and exact versions', () => {
    expect(satisfies('0.1.0', '^0.1.0')).toBe(true);
    expect(satisfies('0.1.5', '^0.1.0')).toBe(true);
    expect(satisfies('0.2.0', '^0.1.0')).toBe(false);
    expect(satisfies('0.0.3', '^0.0.3')).toBe(true);
    expect(satisfies('0.0.4', '^0.0.3')).toBe(false);
    expect(satisfies('1.4.0', '^1.2.3')).toBe(true);
    expect(satisfies('2.0.0', '^1.2.3')).toBe(false);
    expect(satisfies('1.2.2', '^1.2.3')).toBe(false);
    expect(satisfies('1.2.3', '1.2.3')).toBe(true);
    expect(satisfies('1.2.4', '1.2.3')).toBe(false);
    expect(satisfies('1.2.3', 'workspace:^')).toBe(false);
  });
});

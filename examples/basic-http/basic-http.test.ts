import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../../test/packaging/install.js';
import { main } from './start.js';

describe('examples/basic-http', () => {
  // The example runs against the built packages (dist/), as an application installed from npm.
  beforeAll(() => ensureBuilt(), 300_000);

  it('frontend calls both greeters through mesh.fetch configured by env vars only', async () => {
    const lines = await main(6);
    const answers = lines.map(
      (l) => JSON.parse(l) as { greeting: string; from: string; host: string; via: string },
    );
    expect(answers.every((a) => a.via === 'frontend' && a.greeting.startsWith('hello, reader-'))).toBe(true);
    // Round-robin over the two greeters; the Host header keeps the logical name.
    expect(new Set(answers.map((a) => a.from))).toEqual(new Set(['greeter-1', 'greeter-2']));
    expect(answers.every((a) => a.host === 'greeter')).toBe(true);
  });
});

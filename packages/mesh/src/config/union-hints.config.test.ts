import { describe, expect, it } from 'vitest';
import { checkConfigDocument } from '../index.js';

/** The message of the error `checkConfigDocument` throws for `doc`. */
function messageOf(doc: unknown): string {
  try {
    checkConfigDocument(doc);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('the document was accepted');
}

const ring = (hashOn: unknown) => ({
  services: { p: { endpoints: '127.0.0.1:80', loadBalancer: { policy: 'ring_hash', hashOn } } },
});

describe('a near miss in a field of several forms gets the nearest name (probe18 D)', () => {
  it.each([
    [{ heder: 'x-user' }, 'header'],
    [{ cokie: 'session' }, 'cookie'],
    ['sourc', 'source'],
  ])('hashOn %j: did you mean %s', (hashOn, meant) => {
    expect(messageOf(ring(hashOn))).toContain(
      `services.p.loadBalancer.hashOn: expected { header: name }, { cookie: name } or "source" (did you mean "${meant}"?)`,
    );
  });

  it('a value near nothing gets no guess', () => {
    expect(messageOf(ring({ query: 'x' }))).not.toContain('did you mean');
  });

  it('a switch written near its off word', () => {
    expect(messageOf({ services: { p: { endpoints: '127.0.0.1:80', timeout: 'of' } } })).toContain(
      'did you mean "off"?',
    );
  });
});

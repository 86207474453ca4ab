/**
 * Consul's filters and Envoy's route matchers use RE2 (Go's `regexp`, Envoy's `safe_regex`).
 * JavaScript's `RegExp` accepts the RE2 patterns people write in config entries except the
 * leading inline flag group (`(?i)`, `(?s)`, `(?m)`, `(?U)` has no JS form), so that is the one
 * translation done here. RE2 rejects backreferences and lookaround; so do we, so that a pattern
 * Consul refuses is not accepted here either.
 */

const LEADING_FLAGS = /^\(\?([imsU]+)\)/;
const RE2_UNSUPPORTED = /\\[1-9]|\(\?[=!<]|\(\?<[A-Za-z]/;

/**
 * Compile an RE2 pattern to a `RegExp`. With `anchored`, the pattern must match the whole input
 * (Envoy's `safe_regex` and Consul's `PathRegex` / header `Regex` are full matches).
 *
 * @throws Error with the engine's message when the pattern does not compile.
 */
export function compileRe2(pattern: string, anchored: boolean): RegExp {
  let body = pattern;
  let flags = '';
  const m = LEADING_FLAGS.exec(body);
  if (m) {
    const f = m[1] ?? '';
    if (f.includes('U')) throw new Error('the ungreedy flag (?U) is not supported');
    flags = [...new Set(f)].join('');
    body = body.slice(m[0].length);
  }
  if (RE2_UNSUPPORTED.test(body)) {
    throw new Error('backreferences and lookaround are not RE2 syntax');
  }
  // `u` keeps `\p{L}`-style classes (RE2 has them) and rejects the loose escapes RE2 rejects.
  return new RegExp(anchored ? `^(?:${body})$` : body, `${flags}u`);
}

/** The compile error of an RE2 pattern, or `undefined` when it compiles. */
export function re2Error(pattern: string): string | undefined {
  try {
    compileRe2(pattern, false);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * A response head's header lines in the forms a caller's handler is given: as received (the
 * controller's raw lines), or made from the parsed record the stages saw — as strings for undici's
 * `request()` handler, which only parses them, or as bytes for any other old-style handler.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';

/**
 * The lines of a parsed header record as strings, `[name, value, …]` (a repeated header's values
 * in order): what undici's `request()` handler is given in place of the received lines when it
 * only parses them (its `responseHeaders` is not `'raw'`). undici's `parseHeaders` reads string
 * lines as it reads buffers and builds the same record from them, at a third of the cost of
 * reading the received lines again (names are already lower-case, values already decoded).
 */
export function linesOf(headers: IncomingHttpHeaders): string[] {
  const lines: string[] = [];
  for (const name of Object.keys(headers)) {
    const v = headers[name];
    if (Array.isArray(v)) for (const x of v) lines.push(name, x);
    else if (v !== undefined) lines.push(name, String(v));
  }
  return lines;
}

/** The lines of a parsed header record as bytes (latin1), for a handler that reads them as received. */
export function toRaw(headers: IncomingHttpHeaders): Buffer[] {
  return linesOf(headers).map((line) => Buffer.from(line, 'latin1'));
}

/** The header lines exactly as received (names in their own case), when the controller has them. */
export function rawOf(
  controller: Dispatcher.DispatchController,
  field: 'rawHeaders' | 'rawTrailers',
): Buffer[] | undefined {
  const raw = (controller as { rawHeaders?: Buffer[] | null; rawTrailers?: Buffer[] | null })[field];
  return raw ?? undefined;
}

/**
 * The raw layout check of a DNS response, done on the bytes before `dns-packet` decodes them:
 * header counts, names (labels and compression pointers) and record lengths must fit inside the
 * packet, and fixed-size record data (A, AAAA, SRV) must have its size.
 */
import type { MeshError } from '@proxyless/core';

const TYPE_CODES: Readonly<Record<string, number>> = { A: 1, CNAME: 5, SOA: 6, AAAA: 28, SRV: 33 };
/** At most this many records in one response (a bound on work per answer). */
export const MAX_RECORDS = 4096;

/**
 * Check the raw layout of a response before decoding it: the header, every name and every
 * record length must fit inside the packet, and A/AAAA/SRV record data must have the size its
 * type requires. `dns-packet` reads fixed-size fields without checking the declared length, so
 * this is where short or lying records are caught.
 */
export function checkLayout(
  buf: Buffer,
  fail: (field: string, expected: string, value: unknown) => MeshError,
): void {
  if (buf.length < 12) throw fail('packet', 'a DNS message of at least 12 bytes', `${buf.length} bytes`);
  const counts = [
    buf.readUInt16BE(4),
    buf.readUInt16BE(6),
    buf.readUInt16BE(8),
    buf.readUInt16BE(10),
  ] as const;
  const total = counts[0] + counts[1] + counts[2] + counts[3];
  if (total > MAX_RECORDS) throw fail('header.counts', `at most ${MAX_RECORDS} records`, total);
  let offset = 12;
  const skipName = (field: string): void => {
    for (let labels = 0; labels < 128; labels++) {
      if (offset >= buf.length)
        throw fail(field, 'a name inside the packet', `packet ends at byte ${buf.length}`);
      const len = buf[offset]!;
      if (len === 0) {
        offset += 1;
        return;
      }
      if ((len & 0xc0) === 0xc0) {
        if (offset + 2 > buf.length)
          throw fail(field, 'a name inside the packet', `packet ends at byte ${buf.length}`);
        const pointer = ((len & 0x3f) << 8) | buf[offset + 1]!;
        if (pointer >= buf.length) throw fail(field, 'a compression pointer inside the packet', pointer);
        offset += 2;
        return;
      }
      if ((len & 0xc0) !== 0) throw fail(field, 'a label length 0..63', len);
      offset += 1 + len;
    }
    throw fail(field, 'a name of at most 127 labels', 'more');
  };
  for (let i = 0; i < counts[0]; i++) {
    skipName(`questions[${i}].name`);
    if (offset + 4 > buf.length)
      throw fail(`questions[${i}]`, 'a complete question', `packet ends at byte ${buf.length}`);
    offset += 4;
  }
  const sections = ['answers', 'authorities', 'additionals'] as const;
  for (let s = 0; s < 3; s++) {
    const section = sections[s]!;
    const count = counts[s + 1]!;
    for (let i = 0; i < count; i++) {
      const at = `${section}[${i}]`;
      skipName(`${at}.name`);
      if (offset + 10 > buf.length)
        throw fail(at, 'a complete record header', `packet ends at byte ${buf.length}`);
      const type = buf.readUInt16BE(offset);
      const rdlength = buf.readUInt16BE(offset + 8);
      offset += 10;
      if (offset + rdlength > buf.length) {
        throw fail(`${at}.rdlength`, `at most ${buf.length - offset} (bytes left in the packet)`, rdlength);
      }
      if (type === TYPE_CODES.A && rdlength !== 4)
        throw fail(`${at}.rdlength`, '4 for an A record', rdlength);
      if (type === TYPE_CODES.AAAA && rdlength !== 16)
        throw fail(`${at}.rdlength`, '16 for an AAAA record', rdlength);
      if (type === TYPE_CODES.SRV && rdlength < 7)
        throw fail(`${at}.rdlength`, 'at least 7 for an SRV record', rdlength);
      offset += rdlength;
    }
  }
}

import { MeshError } from '@proxyless/core';
import dnsPacket from 'dns-packet';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DnsQuestion, decodeResponse, loadDnsPacket } from './wire.js';

beforeAll(() => loadDnsPacket());

const SOURCE = '127.0.0.1:5353';
const srvQ: DnsQuestion = { id: 4242, name: '_http._tcp.api.mesh.test', type: 'SRV' };
const aQ: DnsQuestion = { id: 7, name: 'api.mesh.test', type: 'A' };

function response(q: DnsQuestion, packet: Partial<dnsPacket.Packet> = {}, rcode = 0): Buffer {
  const buf = dnsPacket.encode({
    type: 'response',
    id: q.id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [{ type: q.type, class: 'IN', name: q.name }],
    ...packet,
  });
  buf.writeUInt16BE((buf.readUInt16BE(2) & 0xfff0) | rcode, 2);
  return buf;
}

function srvAnswer(port: number, target: string, priority = 1, weight = 5): dnsPacket.Answer {
  return { type: 'SRV', name: srvQ.name, ttl: 30, class: 'IN', data: { port, target, priority, weight } };
}

/** The validation error thrown while decoding `buf`. */
function payloadError(buf: Buffer, q: DnsQuestion, transport: 'udp' | 'tcp' = 'udp'): MeshError {
  try {
    decodeResponse(buf, q, SOURCE, transport);
  } catch (error) {
    if (MeshError.is(error)) return error;
    throw error;
  }
  throw new Error('expected the response to be rejected');
}

function expectInvalid(
  buf: Buffer,
  q: DnsQuestion,
  field: string,
  value: unknown,
  transport: 'udp' | 'tcp' = 'udp',
): MeshError {
  const error = payloadError(buf, q, transport);
  expect(error.code).toBe('MESH_REGISTRY_PAYLOAD_INVALID');
  expect(error.details.field).toBe(field);
  expect(error.details.value).toEqual(value);
  expect(error.message).toContain(field);
  expect(error.message).toContain(SOURCE);
  return error;
}

describe('decodeResponse: healthy answers', () => {
  it('reads SRV records with additional-section glue and TTLs', () => {
    const buf = response(srvQ, {
      answers: [srvAnswer(8080, 'a.mesh.test', 1, 10), srvAnswer(8081, 'B.mesh.test.', 2, 0)],
      additionals: [
        { type: 'A', name: 'a.mesh.test', ttl: 12, data: '10.0.0.1' },
        { type: 'AAAA', name: 'a.mesh.test', ttl: 12, data: 'fd00::1' },
      ],
    });
    const r = decodeResponse(buf, srvQ, SOURCE);
    expect(r.kind).toBe('answer');
    if (r.kind !== 'answer') return;
    expect(r.rcode).toBe('NOERROR');
    expect(r.srv).toEqual([
      { target: 'a.mesh.test', port: 8080, priority: 1, weight: 10, ttl: 30 },
      { target: 'b.mesh.test', port: 8081, priority: 2, weight: 0, ttl: 30 },
    ]);
    expect(r.additional.map((a) => a.address)).toEqual(['10.0.0.1', 'fd00::1']);
  });

  it('follows a CNAME chain to the A records and keeps the smallest TTL', () => {
    const buf = response(aQ, {
      answers: [
        { type: 'CNAME', name: 'api.mesh.test', ttl: 3, data: 'real.mesh.test' },
        { type: 'A', name: 'real.mesh.test', ttl: 60, data: '10.0.0.9' },
        { type: 'A', name: 'other.mesh.test', ttl: 60, data: '10.0.0.10' },
      ],
    });
    const r = decodeResponse(buf, aQ, SOURCE);
    if (r.kind !== 'answer') throw new Error('expected an answer');
    expect(r.addresses.map((a) => a.address)).toEqual(['10.0.0.9']);
    expect(r.cnameTtl).toBe(3);
  });

  it('treats NXDOMAIN as a healthy empty answer with the SOA negative TTL', () => {
    const buf = response(
      aQ,
      {
        authorities: [
          {
            type: 'SOA',
            name: 'mesh.test',
            ttl: 90,
            data: {
              mname: 'ns.mesh.test',
              rname: 'root.mesh.test',
              serial: 1,
              refresh: 1,
              retry: 1,
              expire: 1,
              minimum: 15,
            },
          },
        ],
      },
      3,
    );
    const r = decodeResponse(buf, aQ, SOURCE);
    expect(r).toMatchObject({ kind: 'answer', rcode: 'NXDOMAIN', addresses: [], negativeTtl: 15 });
  });

  it('asks for TCP when a UDP answer is truncated', () => {
    const buf = response(srvQ, { flags: dnsPacket.TRUNCATED_RESPONSE });
    expect(decodeResponse(buf, srvQ, SOURCE, 'udp')).toEqual({ kind: 'truncated' });
  });

  it('treats a TTL above 2^31-1 as 0 (RFC 2181)', () => {
    const buf = response(aQ, { answers: [{ type: 'A', name: aQ.name, ttl: 0xfffffff0, data: '10.0.0.1' }] });
    const r = decodeResponse(buf, aQ, SOURCE);
    if (r.kind !== 'answer') throw new Error('expected an answer');
    expect(r.addresses[0]?.ttl).toBe(0);
  });

  it('reads a lone "." SRV target as "service not available"', () => {
    const buf = response(srvQ, { answers: [srvAnswer(1, '.')] });
    const r = decodeResponse(buf, srvQ, SOURCE);
    expect(r).toMatchObject({ kind: 'answer', srv: [], srvNotAvailable: true });
  });
});

describe('decodeResponse: server errors are unavailability, not bad data', () => {
  for (const [rcode, name] of [
    [2, 'SERVFAIL'],
    [5, 'REFUSED'],
    [1, 'FORMERR'],
  ] as const) {
    it(`${name} → MESH_REGISTRY_UNAVAILABLE`, () => {
      const error = payloadError(response(aQ, {}, rcode), aQ);
      expect(error.code).toBe('MESH_REGISTRY_UNAVAILABLE');
      expect(error.details.rcode).toBe(name);
      expect(error.message).toContain(name);
    });
  }
});

describe('decodeResponse: malformed answers → MESH_REGISTRY_PAYLOAD_INVALID naming field and value', () => {
  it('1. a packet shorter than a DNS header', () => {
    expectInvalid(Buffer.from([0x10, 0x92, 0x81]), srvQ, 'packet', '3 bytes');
  });

  it('2. a packet cut in the middle of an answer record', () => {
    const full = response(srvQ, { answers: [srvAnswer(8080, 'a.mesh.test')] });
    const cut = full.subarray(0, full.length - 6);
    const error = expectInvalid(cut, srvQ, 'answers[0].rdlength', 19);
    expect(error.message).toContain('bytes left in the packet');
  });

  it('3. an answer count larger than the records present', () => {
    const buf = response(aQ, { answers: [{ type: 'A', name: aQ.name, ttl: 5, data: '10.0.0.1' }] });
    buf.writeUInt16BE(2, 6);
    expectInvalid(buf, aQ, 'answers[1].name', `packet ends at byte ${buf.length}`);
  });

  it('4. SRV port 0', () => {
    const buf = response(srvQ, { answers: [srvAnswer(8080, 'a.mesh.test'), srvAnswer(0, 'b.mesh.test')] });
    expectInvalid(buf, srvQ, 'answers[1].data.port', 0);
  });

  it('5. SRV target that is not a host name', () => {
    const buf = response(srvQ, { answers: [srvAnswer(8080, 'bad host!.mesh.test')] });
    expectInvalid(buf, srvQ, 'answers[0].data.target', 'bad host!.mesh.test');
  });

  it('6. SRV target that is an IP literal (RFC 2782 requires a name)', () => {
    const buf = response(srvQ, { answers: [srvAnswer(8080, '10.0.0.1')] });
    expectInvalid(buf, srvQ, 'answers[0].data.target', '10.0.0.1');
  });

  it('7. SRV "." target mixed with real targets', () => {
    const buf = response(srvQ, { answers: [srvAnswer(8080, 'a.mesh.test'), srvAnswer(1, '.')] });
    expectInvalid(buf, srvQ, 'answers[1].data.target', '.');
  });

  it('8. an A record whose data is 3 bytes', () => {
    const good = response(aQ, { answers: [{ type: 'A', name: aQ.name, ttl: 5, data: '10.0.0.1' }] });
    const buf = Buffer.concat([good.subarray(0, good.length - 6), Buffer.from([0, 3, 10, 0, 0])]);
    expectInvalid(buf, aQ, 'answers[0].rdlength', 3);
  });

  it('9. an AAAA record whose data is 4 bytes', () => {
    const q: DnsQuestion = { ...aQ, type: 'AAAA' };
    const good = response(q, { answers: [{ type: 'AAAA', name: aQ.name, ttl: 5, data: 'fd00::1' }] });
    const buf = Buffer.concat([good.subarray(0, good.length - 18), Buffer.from([0, 4, 10, 0, 0, 1])]);
    expectInvalid(buf, q, 'answers[0].rdlength', 4);
  });

  it('10. an SRV record with data too short for priority, weight and port', () => {
    const good = response(srvQ, { answers: [srvAnswer(8080, 'a.mesh.test')] });
    // The SRV data (6 bytes + 13-byte target) is last; its rdlength is the 2 bytes before it.
    const rdStart = good.length - 21;
    const buf = Buffer.concat([good.subarray(0, rdStart), Buffer.from([0, 4, 0, 1, 0, 5])]);
    expectInvalid(buf, srvQ, 'answers[0].rdlength', 4);
  });

  it('11. a response whose id is not the query id', () => {
    const buf = response({ ...srvQ, id: 1 });
    expectInvalid(buf, srvQ, 'header.id', 1);
  });

  it('12. a query (QR=0) instead of a response', () => {
    const buf = dnsPacket.encode({ type: 'query', id: aQ.id, questions: [{ type: 'A', name: aQ.name }] });
    expectInvalid(buf, aQ, 'header.qr', 0);
  });

  it('13. a response to another question', () => {
    const buf = response({ ...aQ, name: 'evil.example' });
    expectInvalid(buf, aQ, 'questions[0].name', 'evil.example');
  });

  it('14. a response with no question section', () => {
    const buf = dnsPacket.encode({ type: 'response', id: aQ.id, flags: 0, questions: [] });
    expectInvalid(buf, aQ, 'questions', 0);
  });

  it('15. a truncated answer over TCP', () => {
    const buf = response(srvQ, { flags: dnsPacket.TRUNCATED_RESPONSE });
    expectInvalid(buf, srvQ, 'header.tc', 1, 'tcp');
  });

  it('16. a compression pointer outside the packet', () => {
    const good = response(aQ, { answers: [{ type: 'A', name: aQ.name, ttl: 5, data: '10.0.0.1' }] });
    // Header (12) + question (15-byte name + 4): the answer name follows; make it a pointer past the end.
    const nameAt = 12 + 15 + 4;
    const buf = Buffer.concat([
      good.subarray(0, nameAt),
      Buffer.from([0xff, 0xff]),
      good.subarray(nameAt + 15),
    ]);
    expectInvalid(buf, aQ, 'answers[0].name', 0x3fff);
  });

  it('17. a header announcing more records than allowed', () => {
    const buf = response(aQ);
    buf.writeUInt16BE(0xffff, 6);
    expectInvalid(buf, aQ, 'header.counts', 0xffff + 1);
  });

  it('18. a CNAME to something that is not a host name', () => {
    const buf = response(aQ, { answers: [{ type: 'CNAME', name: aQ.name, ttl: 5, data: 'no such name!' }] });
    expectInvalid(buf, aQ, 'answers[0].data', 'no such name!');
  });

  it('19. a label length with reserved high bits', () => {
    const buf = response(aQ);
    buf[12] = 0x45; // 01xxxxxx: an extended label type nobody uses
    expectInvalid(buf, aQ, 'questions[0].name', 0x45);
  });
});

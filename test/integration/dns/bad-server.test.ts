import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { VirtualClock } from '@proxyless/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import * as DnsPacket from '../../../packages/discovery/src/dns/packet.js';
import { createDnsResolver, type DnsResolver } from '../../../packages/discovery/src/dns/resolver.js';

const { dnsPacket } = DnsPacket;

import { summary, watchUpdates } from './updates.js';

/**
 * A tiny UDP responder on 127.0.0.1 that answers what each test scripts. It stands in for a DNS
 * server only where dnsmasq cannot: malformed answers, server errors and a server that never
 * answers. Healthy behaviour is tested against the real dnsmasq (dnsmasq.test.ts).
 */
interface Responder {
  readonly server: string;
  /**
   * Reply to a decoded query: raw packets sent in order, or `undefined` to stay silent; a promise
   * of them is sent when it settles (a server that takes its time).
   */
  reply: (
    query: DnsPacket.DecodedPacket,
  ) => Buffer | Buffer[] | undefined | Promise<Buffer | Buffer[] | undefined>;
  /** Resolves when the next query arrives (a real event). */
  nextQuery(): Promise<DnsPacket.DecodedPacket>;
  /** Queries received so far. */
  readonly received: number;
  close(): Promise<void>;
}

async function startResponder(): Promise<Responder> {
  const socket = dgram.createSocket('udp4');
  const pending: DnsPacket.DecodedPacket[] = [];
  let waiter: (() => void) | undefined;
  const api: Responder = {
    server: '',
    received: 0,
    reply: () => undefined,
    async nextQuery() {
      while (pending.length === 0) {
        await new Promise<void>((resolve) => {
          waiter = resolve;
        });
      }
      return pending.shift()!;
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (msg, rinfo) => {
    const query = dnsPacket.decode(msg);
    pending.push(query);
    Object.assign(api, { received: api.received + 1 });
    const send = (out: Buffer | Buffer[] | undefined): void => {
      for (const packet of out === undefined ? [] : Array.isArray(out) ? out : [out]) {
        socket.send(packet, rinfo.port, rinfo.address);
      }
    };
    const out = api.reply(query);
    if (out instanceof Promise) void out.then(send);
    else send(out);
    const w = waiter;
    waiter = undefined;
    w?.();
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  Object.assign(api, { server: `127.0.0.1:${(socket.address() as AddressInfo).port}` });
  return api;
}

type Answers = Partial<Record<'SRV' | 'A' | 'AAAA', DnsPacket.Answer[]>>;

/** A well-formed response to `query` with the answers scripted for its type. */
function respond(query: DnsPacket.DecodedPacket, answers: Answers, rcode = 0): Buffer {
  const q = query.questions![0]!;
  const buf = dnsPacket.encode({
    type: 'response',
    id: query.id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [q],
    answers: (answers[q.type as 'SRV' | 'A' | 'AAAA'] ?? []).map((a) => ({ ...a, name: q.name })),
  });
  buf.writeUInt16BE((buf.readUInt16BE(2) & 0xfff0) | rcode, 2);
  return buf;
}

const srv = (port: number, target: string, weight = 1): DnsPacket.Answer => ({
  type: 'SRV',
  name: '',
  ttl: 10,
  data: { port, target, priority: 1, weight },
});
const a = (address: string): DnsPacket.Answer => ({ type: 'A', name: '', ttl: 10, data: address });
const cname = (name: string, target: string): DnsPacket.Answer => ({
  type: 'CNAME',
  name,
  ttl: 10,
  data: target,
});

/** A response to `query` holding the CNAME records `chain` makes from the question name. */
function withCnames(query: DnsPacket.DecodedPacket, chain: (name: string) => DnsPacket.Answer[]): Buffer {
  const q = query.questions![0]!;
  return dnsPacket.encode({
    type: 'response',
    id: query.id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [q],
    answers: chain(q.name),
  });
}

const GOOD: Answers = { SRV: [srv(8080, 'node.mesh.test', 3)], A: [a('10.1.0.1')] };

describe('DNS discovery: bad answers never replace a good set', () => {
  let responder: Responder | undefined;
  let resolver: DnsResolver | undefined;
  afterEach(async () => {
    await resolver?.close();
    await responder?.close();
    resolver = undefined;
    responder = undefined;
  });

  async function setup(answers: Answers = GOOD) {
    const r = await startResponder();
    responder = r;
    r.reply = (q) => respond(q, answers);
    const clock = new VirtualClock();
    resolver = createDnsResolver({
      servers: [r.server],
      domains: ['mesh.test'],
      clock,
      minRefreshMs: 1_000,
      timeoutMs: 1_500,
      backoff: { baseMs: 1_000, capMs: 8_000 },
    });
    const log = watchUpdates(resolver, 'api.mesh.test');
    const first = await log.next();
    expect(summary(first)).toEqual(['10.1.0.1:8080(3)']);
    return { r, clock, log, first };
  }

  const cases: {
    name: string;
    answers: (q: DnsPacket.DecodedPacket) => Buffer | undefined;
    field: string;
    value: unknown;
  }[] = [
    {
      name: 'SRV port 0',
      answers: (q) => respond(q, { ...GOOD, SRV: [srv(0, 'node.mesh.test')] }),
      field: 'answers[0].data.port',
      value: 0,
    },
    {
      name: 'SRV target not a host name',
      answers: (q) => respond(q, { ...GOOD, SRV: [srv(8080, 'bad target.mesh.test')] }),
      field: 'answers[0].data.target',
      value: 'bad target.mesh.test',
    },
    {
      name: 'a packet cut short',
      answers: (q) => respond(q, GOOD).subarray(0, 20),
      field: 'questions[0].name',
      value: 'packet ends at byte 20',
    },
    {
      name: 'an answer to another question',
      answers: (q) => respond({ ...q, questions: [{ type: 'SRV', name: '_http._tcp.evil.example' }] }, GOOD),
      field: 'questions[0].name',
      value: '_http._tcp.evil.example',
    },
    // A CNAME loop, and a chain past 8 hops listed last hop first, used to be applied as an empty
    // set (the loop was dropped; the hop limit counted passes over the records, not hops).
    {
      name: 'a CNAME loop',
      answers: (q) => withCnames(q, (n) => [cname(n, 'x.mesh.test'), cname('x.mesh.test', n)]),
      field: 'answers[1].data',
      value: '_http._tcp.api.mesh.test',
    },
    {
      name: 'a CNAME chain of 9 hops, last hop first',
      answers: (q) =>
        withCnames(q, (n) =>
          Array.from({ length: 9 }, (_, i) =>
            cname(i === 0 ? n : `h${i}.mesh.test`, `h${i + 1}.mesh.test`),
          ).reverse(),
        ),
      field: 'answers[0]',
      value: 'h8.mesh.test',
    },
  ];

  for (const c of cases) {
    it(`keeps the last set (stale) on a malformed answer: ${c.name}`, async () => {
      const { r, clock, log, first } = await setup();
      r.reply = c.answers;
      await clock.next();
      const u = await log.next();
      if (u.kind !== 'error') throw new Error(`expected an error, got ${JSON.stringify(summary(u))}`);
      expect(u.error.code).toBe('MESH_REGISTRY_PAYLOAD_INVALID');
      expect(u.error.details.field).toBe(c.field);
      expect(u.error.details.value).toEqual(c.value);
      expect(u.lastGood?.stale).toBe(true);
      expect(summary({ kind: 'endpoints', set: u.lastGood! })).toEqual(summary(first));
      // Good answers again: the set is fresh again (retried on the backoff timer).
      r.reply = (q) => respond(q, GOOD);
      await clock.next();
      const back = await log.next();
      expect(back.kind).toBe('endpoints');
      if (back.kind === 'endpoints') expect(back.set.stale).toBe(false);
    });
  }

  it('applies nothing when the SRV answer is good but a target lookup is malformed', async () => {
    const { r, clock, log } = await setup();
    r.reply = (q) => {
      const type = q.questions?.[0]?.type;
      if (type === 'SRV')
        return respond(q, { SRV: [srv(8080, 'node.mesh.test'), srv(8081, 'other.mesh.test')] });
      if (q.questions?.[0]?.name === 'other.mesh.test' && type === 'A') {
        const good = respond(q, { A: [a('10.1.0.2')] });
        return Buffer.concat([good.subarray(0, good.length - 6), Buffer.from([0, 2, 10, 1])]);
      }
      return respond(q, GOOD);
    };
    await clock.next();
    const u = await log.next();
    if (u.kind !== 'error') throw new Error('expected an error');
    expect(u.error.code).toBe('MESH_REGISTRY_PAYLOAD_INVALID');
    expect(u.error.details.field).toBe('answers[0].rdlength');
    expect(u.error.details.value).toBe(2);
    expect(summary({ kind: 'endpoints', set: u.lastGood! })).toEqual(['10.1.0.1:8080(3)']);
  });

  it('treats SERVFAIL as an outage: last set kept, retried with backoff', async () => {
    const { r, clock, log } = await setup();
    r.reply = (q) => respond(q, {}, 2);
    await clock.next();
    const u = await log.next();
    if (u.kind !== 'error') throw new Error('expected an error');
    expect(u.error.code).toBe('MESH_REGISTRY_UNAVAILABLE');
    expect(u.error.details.rcode).toBe('SERVFAIL');
    expect(u.lastGood?.endpoints).toHaveLength(1);
    // The retry comes after a backoff delay within [100 ms, 1 s) of the failure.
    const failedAt = clock.now();
    r.reply = (q) => respond(q, GOOD);
    await clock.next();
    expect(clock.now() - failedAt).toBeGreaterThanOrEqual(100);
    expect(clock.now() - failedAt).toBeLessThan(1_000);
    expect((await log.next()).kind).toBe('endpoints');
  });

  it('uses the A answer when AAAA fails, and fails (last set kept) when A has nothing either', async () => {
    // A server or middlebox answering SERVFAIL for AAAA used to fail every lookup of a name with A
    // records only, for as long as it lasted.
    const { r, clock, log } = await setup();
    r.reply = (q) =>
      q.questions![0]!.type === 'AAAA'
        ? respond(q, {}, 2)
        : respond(q, { ...GOOD, SRV: [srv(8080, 'node.mesh.test', 3), srv(8081, 'other.mesh.test', 1)] });
    await clock.next();
    const u = await log.next();
    expect(summary(u)).toEqual(['10.1.0.1:8080(3)', '10.1.0.1:8081(1)']);
    // A answers with no address and AAAA fails: not "no endpoints" but a failure.
    r.reply = (q) =>
      q.questions![0]!.type === 'AAAA' ? respond(q, {}, 2) : respond(q, { SRV: GOOD.SRV, A: [] });
    await clock.next();
    const e = await log.next();
    if (e.kind !== 'error') throw new Error(`expected an error, got ${e.kind}`);
    expect(e.error.details.rcode).toBe('SERVFAIL');
    expect(e.lastGood?.endpoints).toHaveLength(2);
  });

  it('times out on a silent server (injected clock), after asking it again, and keeps the last set', async () => {
    const { r, clock, log } = await setup();
    let asked = 0;
    r.reply = (q) => {
      if (q.questions?.[0]?.type === 'SRV') asked++;
      return undefined;
    };
    await clock.next(); // refresh
    while (asked < 1) await r.nextQuery(); // the refresh's SRV query has reached the server
    const sentAt = clock.now();
    await clock.next(); // its timeout: the query is sent again (attempts: 2, the default)
    expect(clock.now() - sentAt).toBe(1_500);
    while (asked < 2) await r.nextQuery();
    await clock.next(); // the second timeout fails the refresh
    expect(clock.now() - sentAt).toBe(3_000);
    const u = await log.next();
    if (u.kind !== 'error') throw new Error('expected an error');
    expect(u.error.code).toBe('MESH_REGISTRY_UNAVAILABLE');
    expect(u.error.details.reason).toBe('timeout');
    expect(u.lastGood?.endpoints).toHaveLength(1);
    expect(asked).toBe(2);
  });

  for (const attempts of [2, 1]) {
    it(`a lost datagram ${attempts > 1 ? 'is sent again and the refresh succeeds' : 'fails the refresh with attempts: 1'} (attempts: ${attempts})`, async () => {
      // A lookup used to send each query once: one datagram lost on the way failed the whole
      // refresh (the last set stayed, marked stale) until the back-off's next try.
      const r = await startResponder();
      responder = r;
      const clock = new VirtualClock();
      resolver = createDnsResolver({
        servers: [r.server],
        domains: ['mesh.test'],
        clock,
        timeoutMs: 1_500,
        attempts,
      });
      // The first A query is "lost": no answer to it; every other query is answered.
      let droppedA = false;
      let askedA = 0;
      r.reply = (q) => {
        if (q.questions?.[0]?.type === 'A') askedA++;
        if (q.questions?.[0]?.type === 'A' && !droppedA) {
          droppedA = true;
          return undefined;
        }
        return respond(q, { SRV: [], A: [a('10.1.0.7')] });
      };
      const log = watchUpdates(resolver, 'api.mesh.test');
      while (!droppedA) await r.nextQuery();
      await clock.next(); // the lost query's timeout
      const u = await log.next();
      if (attempts > 1) {
        expect(u.kind).toBe('endpoints');
        expect(summary(u)).toEqual(['10.1.0.7:80(1)']);
        expect(askedA).toBe(2); // lost, then sent again
      } else {
        if (u.kind !== 'error') throw new Error(`expected an error, got ${u.kind}`);
        expect(u.error.details.reason).toBe('timeout');
        expect(askedA).toBe(1);
      }
    });
  }

  it('asks again only the servers that gave no answer: one that answered SERVFAIL is not asked twice', async () => {
    const silent = await startResponder();
    const failing = await startResponder();
    failing.reply = (q) => respond(q, {}, 2); // SERVFAIL
    try {
      const clock = new VirtualClock();
      resolver = createDnsResolver({
        servers: [silent.server, failing.server],
        domains: ['mesh.test'],
        srv: false,
        clock,
        timeoutMs: 1_500,
        attempts: 3,
      });
      const log = watchUpdates(resolver, 'api.mesh.test');
      for (let round = 1; round <= 3; round++) {
        while (silent.received < 2 * round) await silent.nextQuery(); // this round's A and AAAA
        await clock.next(); // their timeouts (the third round's fail the lookup)
      }
      const u = await log.next();
      if (u.kind !== 'error') throw new Error(`expected an error, got ${u.kind}`);
      expect(silent.received).toBe(6); // A and AAAA, 3 rounds
      expect(failing.received).toBe(2); // A and AAAA, once
    } finally {
      await resolver?.close();
      resolver = undefined;
      await Promise.all([silent.close(), failing.close()]);
    }
  });

  it('asks a server that gave no answer after the others for 30 s, then in its place again', async () => {
    // Every lookup asked the silent first server and waited out its timeout before the next one.
    const silent = await startResponder();
    const good = await startResponder();
    good.reply = (q) => respond(q, GOOD);
    try {
      const clock = new VirtualClock();
      resolver = createDnsResolver({
        servers: [silent.server, good.server],
        domains: ['mesh.test'],
        clock,
        minRefreshMs: 60_000,
        timeoutMs: 1_500,
      });
      const api = watchUpdates(resolver, 'api.mesh.test');
      const first = await silent.nextQuery(); // the SRV query: no answer
      expect(first.questions?.[0]).toMatchObject({ type: 'SRV', name: '_http._tcp.api.mesh.test' });
      await clock.next(); // its timeout; the good server answers it, then the target lookups
      expect(summary(await api.next())).toEqual(['10.1.0.1:8080(3)']);
      // A new service within 30 s: not one query to the silent server, no timeout waited.
      const web = watchUpdates(resolver, 'web.mesh.test');
      expect(summary(await web.next())).toEqual(['10.1.0.1:8080(3)']);
      await clock.advance(30_000);
      // 30 s later it is asked first again: the next query it gets is this one (none of the
      // queries since its timeout, target lookups included, went to it).
      const later = watchUpdates(resolver, 'late.mesh.test');
      expect((await silent.nextQuery()).questions?.[0]?.name).toBe('_http._tcp.late.mesh.test');
      await clock.next();
      expect(summary(await later.next())).toEqual(['10.1.0.1:8080(3)']);
    } finally {
      await resolver?.close();
      resolver = undefined;
      await Promise.all([silent.close(), good.close()]);
    }
  });

  it('a refresh hint looks the name up again, but never sooner than minRefreshMs after the last answer', async () => {
    const { r, clock } = await setup(); // answered at 0; the TTL (10 s) sets the next refresh
    const asked = r.received;
    for (let i = 0; i < asked; i++) await r.nextQuery(); // those of the first lookup
    resolver!.refresh('api.mesh.test');
    await clock.advance(999);
    expect(r.received).toBe(asked);
    await clock.advance(1);
    expect((await r.nextQuery()).questions?.[0]?.name).toBe('_http._tcp.api.mesh.test');
    expect(clock.now()).toBe(1_000);
  });

  it('says why a server is unreachable: details.reason "refused" for an ICMP port unreachable', async () => {
    const { r, clock, log } = await setup();
    // Nothing listens on the server's port any more: the connected UDP socket gets ECONNREFUSED.
    await r.close();
    responder = undefined;
    await clock.next(); // refresh
    const u = await log.next();
    if (u.kind !== 'error') throw new Error('expected an error');
    expect(u.error.code).toBe('MESH_REGISTRY_UNAVAILABLE');
    expect(u.error.details).toMatchObject({ server: r.server, reason: 'refused', transport: 'udp' });
    expect(u.lastGood?.endpoints).toHaveLength(1);
  });

  it('ignores a datagram with another query id and takes the real answer', async () => {
    const { r, clock, log } = await setup();
    r.reply = (q) => [
      respond({ ...q, id: (q.id! + 1) & 0xffff }, { ...GOOD, A: [a('6.6.6.6')] }),
      respond(q, { ...GOOD, A: [a('10.1.0.7')] }),
    ];
    await clock.next();
    expect(summary(await log.next())).toEqual(['10.1.0.7:8080(3)']);
  });

  it('applies an empty set for a lone "." SRV target (service not available)', async () => {
    const { r, clock, log } = await setup();
    r.reply = (q) => respond(q, { SRV: [srv(1, '.')] });
    await clock.next();
    const u = await log.next();
    expect(u.kind).toBe('endpoints');
    if (u.kind === 'endpoints') expect(u.set.endpoints).toEqual([]);
  });
});

describe('DNS discovery: an SRV name with many targets and no glue', () => {
  it('looks the targets up a few at a time, with no listener-leak warning, and resolves them all', async () => {
    // Every target's A and AAAA queries used to be sent at once: 400 targets overflowed dnsmasq's
    // receive queue and the whole refresh failed; six were enough for a MaxListenersExceededWarning.
    const r = await startResponder();
    const targets = 60;
    let outstanding = 0;
    let most = 0;
    r.reply = (q) => {
      const { type, name } = q.questions![0]!;
      if (type === 'SRV')
        return respond(q, {
          SRV: Array.from({ length: targets }, (_, i) => srv(9000 + i, `t${i}.mesh.test`)),
        });
      outstanding += 1;
      most = Math.max(most, outstanding);
      const i = Number(/^t(\d+)\./.exec(name)?.[1]);
      // A server that answers each query 5 ms later: queries sent together are outstanding together.
      return new Promise<Buffer>((resolve) =>
        setTimeout(() => {
          outstanding -= 1;
          resolve(respond(q, { A: [a(`10.2.0.${i}`)] }));
        }, 5),
      );
    };
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(`${w.name}: ${w.message}`);
    };
    process.on('warning', onWarning);
    const resolver = createDnsResolver({
      servers: [r.server],
      domains: ['mesh.test'],
      clock: new VirtualClock(),
      timeoutMs: 1_500,
    });
    try {
      const first = await watchUpdates(resolver, 'many.mesh.test').next();
      expect(first.kind).toBe('endpoints');
      expect(summary(first)).toHaveLength(targets);
      // At most 8 targets (16 queries) at once, not all 120 queries.
      expect(most).toBeGreaterThan(1);
      expect(most).toBeLessThanOrEqual(16);
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(warnings.filter((w) => w.includes('MaxListeners'))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await resolver.close();
      await r.close();
    }
  });
});

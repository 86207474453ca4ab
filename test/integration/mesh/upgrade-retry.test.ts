/**
 * Upgrades (WebSocket) and CONNECT are retried after a connect failure, as every request is: the
 * first endpoint never saw them (docs/policies.md, safety rules). Before, the retry stage let them
 * through untouched, so whenever the round robin started at a dead endpoint the call failed with
 * MESH_CONNECT_FAILED while a GET to the same service went to the live one. Once anything was
 * sent, an upgrade or CONNECT is not retried: its answer hands a socket over.
 */
import type { Duplex } from 'node:stream';
import { MeshError } from 'proxyless';
import { seededRandom } from 'proxyless/testing';
import { connect, upgrade } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { deadPort, Opened, rejection, within } from './data-plane-support.js';

const opened = new Opened();
afterEach(() => opened.closeAll());

async function echoing(name: string) {
  const s = await opened.server(name);
  let upgrades = 0;
  let connects = 0;
  s.server.on('upgrade', (req, socket: Duplex) => {
    upgrades++;
    req.resume();
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\n');
    socket.on('data', (d) => socket.write(d));
  });
  s.server.on('connect', (_req, socket: Duplex) => {
    connects++;
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    socket.on('data', (d) => socket.write(d));
  });
  return { s, counts: () => ({ upgrades, connects }) };
}

async function echoOver(socket: Duplex, text: string): Promise<string> {
  socket.write(text);
  const got = await within(new Promise<Buffer>((r) => socket.once('data', r)), 5000, 'echo');
  socket.destroy();
  return String(got);
}

describe('upgrade and CONNECT through the retry stage', () => {
  it('are retried on another endpoint after a connect failure, whichever endpoint the pick starts at', async () => {
    const live = await echoing('live');
    const dead = `127.0.0.1:${await deadPort()}`;
    let retried = 0;
    for (let seed = 1; seed <= 6; seed++) {
      const m = opened.mesh({
        env: {},
        random: seededRandom(seed),
        services: { api: { endpoints: `${dead},${live.s.address}` } },
      });
      const up = await upgrade('http://api/ws', { dispatcher: m.dispatcher, protocol: 'echo' });
      expect(await echoOver(up.socket, `u${seed}`)).toBe(`u${seed}`);
      const tunnel = await connect('http://api', { dispatcher: m.dispatcher });
      expect(tunnel.statusCode).toBe(200);
      expect(await echoOver(tunnel.socket, `c${seed}`)).toBe(`c${seed}`);
      retried += m.stats('api')?.endpoints.find((e) => e.id === dead)?.connectFailures ?? 0;
    }
    // The dead endpoint was picked first at least once (a connect failed there): those calls were
    // retried, not failed.
    expect(retried).toBeGreaterThan(0);
    expect(live.counts()).toEqual({ upgrades: 6, connects: 6 });
  });

  it('are not retried once sent: an upgrade the endpoint reset fails after one attempt', async () => {
    const s = await opened.server('resets');
    let upgrades = 0;
    s.server.on('upgrade', (req, socket: Duplex) => {
      upgrades++;
      req.resume();
      socket.destroy();
    });
    const other = await opened.server('other');
    let otherUpgrades = 0;
    other.server.on('upgrade', (_req, socket: Duplex) => {
      otherUpgrades++;
      socket.destroy();
    });
    const m = opened.meshFor([s, other], { loadBalancer: { policy: 'round_robin' } });
    const error = await rejection(
      within(upgrade('http://api/ws', { dispatcher: m.dispatcher, protocol: 'echo' }), 5000, 'upgrade'),
    );
    expect(MeshError.is(error, 'MESH_CONNECT_FAILED')).toBe(false);
    expect(upgrades + otherUpgrades).toBe(1);
  });
});

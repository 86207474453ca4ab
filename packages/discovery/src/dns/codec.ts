/**
 * The `dns-packet` codec of the DNS wire protocol: loaded on first use, then used to encode
 * query packets (and, in `decode.ts`, to decode responses).
 */
import type * as DnsPacket from 'dns-packet';
import type { DnsQuestion } from './message.js';

/** The `dns-packet` module, as far as the wire protocol uses it. */
type DnsPacketModule = Pick<typeof DnsPacket, 'encode' | 'decode' | 'RECURSION_DESIRED'>;

let codec: DnsPacketModule | undefined;
let loading: Promise<DnsPacketModule> | undefined;

/**
 * Load `dns-packet` on first use, so that a mesh that never selects the DNS registry does not
 * load it (a regular dependency, unlike the etcd client: it is small). {@link exchange} awaits it;
 * {@link encodeQuery} and {@link decodeResponse} need it loaded.
 */
export function loadDnsPacket(): Promise<DnsPacketModule> {
  loading ??= import('dns-packet').then(
    (mod) => {
      // A CommonJS module: its exports are `default` (Node's ESM loader, the CJS build, bundlers).
      codec = mod.default as DnsPacketModule;
      return codec;
    },
    (error: unknown) => {
      loading = undefined;
      throw error;
    },
  );
  return loading;
}

/** The loaded codec: {@link loadDnsPacket} must have resolved first. */
export function dnsPacket(): DnsPacketModule {
  if (codec === undefined) throw new Error('dns-packet is not loaded yet: await loadDnsPacket() first');
  return codec;
}

/** Build a query packet (recursion desired). */
export function encodeQuery(question: DnsQuestion): Buffer {
  const codec = dnsPacket();
  return codec.encode({
    type: 'query',
    id: question.id,
    flags: codec.RECURSION_DESIRED,
    questions: [{ type: question.type, class: 'IN', name: question.name }],
  });
}

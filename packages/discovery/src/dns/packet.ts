/**
 * The `dns-packet` codec with its types, re-exported for the DNS test suites (which live
 * outside this package and cannot resolve its dependencies). Not part of the public API.
 */
import dnsPacket from 'dns-packet';

export type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';
export { dnsPacket };

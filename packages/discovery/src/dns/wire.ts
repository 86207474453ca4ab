/**
 * The DNS wire protocol, spoken directly to the configured servers with `dns-packet`: UDP first,
 * TCP when the UDP answer is truncated. Unlike `node:dns`, this keeps the TTL of every record
 * (SRV included), lets a query go to a server on any port, and lets every answer be validated
 * field by field before anything is applied.
 */

// Its parts, one concept a module: the shapes of questions and answers (`message.ts`), the
// `dns-packet` codec and query encoding (`codec.ts`), the raw layout check of a response
// (`layout.ts`), decoding and validating a response (`decode.ts`), and the UDP/TCP exchange with
// one server (`exchange.ts`).
export { encodeQuery, loadDnsPacket } from './codec.js';
export { decodeResponse } from './decode.js';
export { type ExchangeOptions, exchange } from './exchange.js';
export { MAX_RECORDS } from './layout.js';
export {
  type AddressEntry,
  type DnsAnswer,
  type DnsQueryType,
  type DnsQuestion,
  type DnsResponse,
  type DnsServer,
  normalizeName,
  type SrvEntry,
} from './message.js';

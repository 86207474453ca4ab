import { describe } from 'vitest';
import { consulCases } from './consul.cases.js';

/**
 * Opt-in: runs the shared cases against a real Consul agent when `CONSUL_HTTP_ADDR` is set
 * (e.g. `consul agent -dev` and `CONSUL_HTTP_ADDR=127.0.0.1:8500`). Not part of CI. Cases that
 * need a double-only control are skipped with the reason in their title.
 */
const address = process.env.CONSUL_HTTP_ADDR;
const token = process.env.CONSUL_HTTP_TOKEN;

describe.skipIf(!address)(
  `Consul discovery against a real agent${address ? ` at ${address}` : ' (skipped: opt-in, set CONSUL_HTTP_ADDR to a Consul agent to run)'}`,
  () => {
    consulCases(() => ({ kind: 'real', address: address ?? '', ...(token ? { token } : {}) }));
  },
);

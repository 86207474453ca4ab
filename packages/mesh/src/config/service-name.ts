/**
 * The rules of a service name in a config document: the name a request's host can carry, and one
 * service per name regardless of case, as DNS and Consul names are.
 */
import { domainToASCII } from 'node:url';
import type { Issues } from '@proxyless/core';
import { SERVICE_NAME_CHARS, SERVICE_NAME_PATTERN } from './schema.js';

const NAME = new RegExp(SERVICE_NAME_PATTERN);
const PUNYCODE_LABEL = /(^|\.)xn--/i;
const NAME_CHARS = new RegExp(SERVICE_NAME_CHARS);

/**
 * A service name's rules (the pattern; unique regardless of case, as DNS and Consul names are):
 * recorded at `field`. False when the name cannot be used at all.
 */
export function checkServiceName(name: string, field: string, seen: Set<string>, issues: Issues): boolean {
  if (!NAME_CHARS.test(name)) {
    issues.add(
      field,
      'a service name of letters, digits, `-`, `_` and `.` that starts and ends with a letter or digit',
      name,
    );
    return false;
  }
  if (!NAME.test(name)) {
    // Requests to these hosts go straight through (destinationFor): the entry could never apply.
    const why = /(^|\.)localhost$/i.test(name)
      ? '`localhost` names are never services (RFC 6761)'
      : 'a name whose last label is a number is an IPv4 address to URL parsers';
    issues.add(field, `a service name a request can reach: ${why}`, name);
    return false;
  }
  // A punycode label (`xn--…`) that does not decode: URL parsers refuse the host, so no request
  // could ever name the service.
  if (PUNYCODE_LABEL.test(name) && domainToASCII(name) === '') {
    issues.add(
      field,
      'a service name a request can reach: an `xn--` label must be valid punycode (URL parsers refuse this host)',
      name,
    );
    return false;
  }
  const lower = name.toLowerCase();
  if (seen.has(lower)) issues.add(field, 'a service name unique regardless of case', name);
  seen.add(lower);
  return true;
}

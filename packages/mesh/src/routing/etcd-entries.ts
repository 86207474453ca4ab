/**
 * Config entries in etcd: one key per entry, `/proxyless/config/<kind>/<name>`, the value the
 * entry's JSON exactly as `consul config write` takes it. A pure function from the key/value
 * pairs under the prefix (as a range read or a watch snapshot gives them) to validated entries;
 * the integrator wires the watch.
 */

import { checkEntriesAndChains } from './compile.js';
import { CONFIG_ENTRY_KINDS, type ConfigEntry } from './entries.js';
import { EntryIssues } from './entry-issues.js';
import { type ConfigEntrySet, checkConfigEntries } from './validate.js';

/** Key prefix of config entries in etcd. */
export const ETCD_CONFIG_PREFIX = '/proxyless/config/';

/** One key/value pair as read from etcd (value as text or bytes). */
export interface EtcdKeyValue {
  readonly key: string;
  readonly value: string | Uint8Array;
}

/** The etcd key of an entry. */
export function etcdConfigKey(
  entry: Pick<ConfigEntry, 'Kind' | 'Name'>,
  prefix = ETCD_CONFIG_PREFIX,
): string {
  return `${prefix}${entry.Kind}/${entry.Name}`;
}

/**
 * Validate every entry under the prefix. The key must name the entry's `Kind` and `Name`;
 * a missing `Kind`/`Name` in the value is taken from the key. Keys outside
 * `<prefix><kind>/<name>` are errors, so a typo is not silently ignored.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` naming each bad key (`etcd <key>`) or entry and field,
 * every problem at once: the keys', the entries', and then those of the chains through them.
 */
export function entriesFromEtcd(pairs: readonly EtcdKeyValue[], prefix = ETCD_CONFIG_PREFIX): ConfigEntrySet {
  const issues = new EntryIssues();
  const raw: unknown[] = [];
  // The entries of bad keys, which no chain is compiled through (see `CheckedEntries.unusable`).
  const unusable = new Set<string>();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (const { key, value } of [...pairs].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    const label = `etcd ${key}`;
    if (!key.startsWith(prefix)) {
      issues.add(label, '', `key is not under ${prefix}`);
      continue;
    }
    const parts = key.slice(prefix.length).split('/');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      issues.add(label, '', `expected a key ${prefix}<kind>/<name>`);
      // The entry it was meant to be, when its kind says (`service-router/web/extra`: the router of
      // `web`; `service-router/`: a router), is the one no chain is compiled through; only a key
      // whose kind is unknown may have meant any entry. The other chains are still checked.
      const kind = parts[0] as string;
      if (!(CONFIG_ENTRY_KINDS as readonly string[]).includes(kind)) unusable.add('*');
      else unusable.add(`${kind}/${parts[1] === undefined || parts[1] === '' ? '*' : parts[1]}`);
      continue;
    }
    const [kind, name] = parts as [string, string];
    unusable.add(`${kind}/${name}`);
    let doc: unknown;
    try {
      doc = JSON.parse(typeof value === 'string' ? value : decoder.decode(value));
    } catch (error) {
      issues.add(label, '', `value is not JSON: ${(error as Error).message}`);
      continue;
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
      issues.add(label, '', 'value must be a JSON object (one config entry)');
      continue;
    }
    const o = { Kind: kind, Name: name, ...(doc as Record<string, unknown>) };
    if (o.Kind !== kind || o.Name !== name) {
      issues.add(
        label,
        '',
        `entry ${String(o.Kind)}/${String(o.Name)} is stored under the key of ${kind}/${name}`,
      );
      continue;
    }
    unusable.delete(`${kind}/${name}`);
    raw.push(o);
  }
  const checked = checkConfigEntries(raw);
  if (issues.ok && checked.issues.ok) return checked.set;
  for (const u of checked.unusable) unusable.add(u);
  checkEntriesAndChains({ ...checked, unusable }, undefined, issues.list).issues.throwIfAny(
    'etcd config entries',
  );
  return checked.set;
}

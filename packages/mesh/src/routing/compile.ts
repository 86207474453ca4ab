/**
 * Config entries → one {@link RoutingChain} per service, as Consul's discovery-chain compiler
 * does it (`agent/consul/discoverychain/compile.go`, summarised in consul-api.md §7):
 * the service's own router (with the implicit catch-all route last) → splitters (recursive,
 * flattened: weights multiplied) → resolvers (`Redirect`, then `DefaultSubset`; a missing
 * resolver is a default one with a 5 s connect timeout; `Failover` per subset or `*`). A
 * flattened split keeps the outer split's header edits (`ServiceSplit.MergeParent`).
 *
 * Rules that need more than one entry are checked here with Consul's messages: the L7 protocol
 * gate, one protocol per chain, subsets that must exist, splitter and redirect loops. Failover is
 * not recursive (compile.go `detectCircularReferences`): a resolver's failover targets are a flat
 * list, a target's own failover is never followed, so resolvers failing over to each other
 * (a → b, b → a) are valid, as in Consul.
 */
import type { RoutingChain } from './chain.js';
import {
  Abort,
  ChainCompiler,
  DEFAULT_CONNECT_TIMEOUT_MS,
  flattenedWeight,
  L7_PROTOCOLS,
  mergeHeaderModifiers,
  NONE,
  protocolOf,
} from './chain-compiler.js';
import { type EntryIssue, EntryIssues } from './entry-issues.js';
import { type CheckedEntries, type ConfigEntrySet, checkConfigEntries } from './validate.js';

export { DEFAULT_CONNECT_TIMEOUT_MS, flattenedWeight, L7_PROTOCOLS, mergeHeaderModifiers, protocolOf };

export interface CompileOptions {
  /** Datacenter the chains are compiled for. @defaultValue 'dc1' */
  readonly datacenter?: string;
}

/** Entries validated and compiled: one chain per service, the default chain for any other. */
export interface RoutingConfig {
  readonly entries: ConfigEntrySet;
  readonly datacenter: string;
  /** Services that have at least one entry, sorted. */
  readonly services: readonly string[];
  /** The chain of `service` (compiled on first use for services without entries). */
  chain(service: string): RoutingChain;
}

/**
 * Compile the chain of one service from validated entries.
 *
 * @throws MeshError `MESH_CONFIG_INVALID` naming the entry and field (protocol gate, missing
 * subset, loops).
 */
export function compileChain(
  set: ConfigEntrySet,
  service: string,
  options: CompileOptions = {},
): RoutingChain {
  const issues = new EntryIssues();
  const chain = tryCompile(set, service, options.datacenter ?? 'dc1', issues);
  issues.throwIfAny(`discovery chain "${service}"`);
  return chain!;
}

/**
 * Compile one chain, recording its problems. With `lenient` (entries that have problems of their
 * own), any failure is taken for one that follows from those: the set is refused all the same.
 */
function tryCompile(
  set: ConfigEntrySet,
  service: string,
  dc: string,
  issues: EntryIssues,
  unusable: ReadonlySet<string> = NONE,
  lenient = false,
): RoutingChain | undefined {
  try {
    return new ChainCompiler(set, service, dc, issues, unusable, lenient).compile();
  } catch (error) {
    if (error instanceof Abort || lenient) return undefined;
    throw error;
  }
}

/**
 * Entries checked one by one, then every chain through them: `issues` lists the entries' own
 * problems first (in their order), then each chain's (in the order of the services), each once:
 * a chain error can surface in several chains (a redirect shared by two services). A chain is
 * compiled through an entry that breaks its own rules, not through one whose shape is wrong.
 * `before`: problems found ahead of these (an etcd key), listed first.
 */
export function checkEntriesAndChains(
  checked: CheckedEntries,
  dc = 'dc1',
  before: readonly EntryIssue[] = [],
): { issues: EntryIssues; chains: Map<string, RoutingChain>; services: Set<string> } {
  const { set, unusable } = checked;
  const lenient = before.length > 0 || !checked.issues.ok;
  const found = new EntryIssues();
  const services = new Set<string>([
    ...set.routers.keys(),
    ...set.splitters.keys(),
    ...set.resolvers.keys(),
    ...set.defaults.keys(),
  ]);
  const chains = new Map<string, RoutingChain>();
  for (const name of services) {
    const c = tryCompile(set, name, dc, found, unusable, lenient);
    if (c) chains.set(name, c);
  }
  const seen = new Set<string>();
  const issues = new EntryIssues();
  for (const i of [...before, ...checked.issues.list, ...found.list]) {
    const k = `${i.entry}\u0000${i.path}\u0000${i.message}`;
    if (!seen.has(k)) {
      seen.add(k);
      issues.add(i.entry, i.path, i.message, i.value);
    }
  }
  return { issues, chains, services };
}
/**
 * Validate raw entries (or take a validated set) and compile the chain of every service that has
 * an entry, so that every chain-level error is found before anything is applied.
 *
 * @example
 * const config = compileRoutingConfig(doc.configEntries, { datacenter: 'dc1' });
 * const decision = route(config.chain('payments'), request, random);
 * @throws MeshError `MESH_CONFIG_INVALID` listing every problem by `Kind/Name` and field path, at
 * once: each entry's own (shape, write rules) and those of the chains through them.
 */
export function compileRoutingConfig(
  entries: readonly unknown[] | ConfigEntrySet,
  options: CompileOptions = {},
): RoutingConfig {
  const checked: CheckedEntries = Array.isArray(entries)
    ? checkConfigEntries(entries)
    : { set: entries as ConfigEntrySet, issues: new EntryIssues(), unusable: NONE };
  const set = checked.set;
  const dc = options.datacenter ?? 'dc1';
  // Every problem at once: each entry's own, then those of the chains through them.
  const { issues, chains, services: names } = checkEntriesAndChains(checked, dc);
  issues.throwIfAny('config entries');
  const services = Object.freeze([...names].sort());
  return Object.freeze({
    entries: set,
    datacenter: dc,
    services,
    chain(service: string): RoutingChain {
      let c = chains.get(service);
      if (!c) {
        c = compileChain(set, service, { datacenter: dc });
        chains.set(service, c);
      }
      return c;
    },
  });
}

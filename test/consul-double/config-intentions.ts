/**
 * `service-intentions` writes in the Consul double (consul-api.md §6.7): Consul's validation
 * texts, and `Sources` sorted by precedence (highest first) with the read-only `Precedence`
 * recomputed on every write. CE precedence: exact source → exact destination 9, `*` → exact 8,
 * exact → `*` 6, `*` → `*` 5.
 *
 * Test tree only: never part of a published package.
 */

type Json = Record<string, unknown>;

/** Precedence of one source for a destination name (Consul CE). */
export function intentionPrecedence(source: string, destination: string): number {
  if (destination === '*') return source === '*' ? 5 : 6;
  return source === '*' ? 8 : 9;
}

/**
 * Validate and normalise an intentions entry as Consul stores it.
 * @returns the entry to store, or Consul's error message.
 */
export function normaliseIntentions(entry: Json): Json | string {
  const name = typeof entry.Name === 'string' ? entry.Name : '';
  if (name === '') return 'Name is required';
  const sources = Array.isArray(entry.Sources) ? (entry.Sources as Json[]) : [];
  if (sources.length === 0) return 'At least one source is required';
  const seen = new Set<string>();
  const out: Json[] = [];
  for (const [i, raw] of sources.entries()) {
    const s = typeof raw === 'object' && raw !== null ? { ...raw } : {};
    const src = typeof s.Name === 'string' ? s.Name : '';
    if (src === '') return `Sources[${i}].Name is required`;
    if (src !== '*' && src.includes('*'))
      return `Sources[${i}].Name: wildcard character '*' cannot be used with partial values`;
    const perms = Array.isArray(s.Permissions) ? s.Permissions : undefined;
    if (perms && perms.length > 0) {
      if (s.Action !== undefined && s.Action !== '')
        return `Sources[${i}].Action must be omitted if Permissions are specified`;
      if (name === '*')
        return `Sources[${i}].Permissions cannot be specified on intentions with wildcarded destinations`;
    } else if (s.Action !== 'allow' && s.Action !== 'deny') {
      return `Sources[${i}].Action must be set to 'allow' or 'deny'`;
    }
    if (s.Type !== undefined && s.Type !== '' && s.Type !== 'consul')
      return `Sources[${i}].Type must be set to 'consul'`;
    if (seen.has(src)) return `Sources[${i}] defines "${src}" more than once`;
    seen.add(src);
    s.Type = 'consul';
    s.Precedence = intentionPrecedence(src, name);
    out.push(s);
  }
  // Highest precedence first; ties keep the written order (a stable sort).
  out.sort((a, b) => Number(b.Precedence) - Number(a.Precedence));
  return { ...entry, Sources: out };
}

/**
 * Secrets kept out of messages: an error or a log line quotes the value it refuses, and some
 * values hold credentials (an ACL token under a misspelt name, a password in a URL, an exporter's
 * API key). Such values are named by their shape only.
 */

/** Whether a variable's name says it holds a credential (`MESH_CONSUL_TOKEN`, `…_HEADERS`, `…_PASSWORD`). */
export function looksSecret(name: string): boolean {
  return /TOKEN|SECRET|PASSW|(^|_)PASS($|_)|(^|_)KEY($|_)|API_?KEY|AUTH|CREDENTIAL|HEADERS|COOKIE|PRIVATE/i.test(
    name,
  );
}

/** What a message shows for a secret value: its length, never its text. */
export function redactedValue(value: string): string {
  return `<redacted: ${value.length} characters>`;
}

/** `value`, or {@link redactedValue} when `name` {@link looksSecret}. */
export function shownValue(name: string, value: string): string {
  return looksSecret(name) ? redactedValue(value) : value;
}

/** A URL (or a list of them) with each password in user info replaced by `***`, for messages and logs. */
export function redactUserInfo(value: string): string {
  return value.replace(/(\/\/[^/@:,\s]*):[^/@,\s]*@/g, '$1:***@');
}

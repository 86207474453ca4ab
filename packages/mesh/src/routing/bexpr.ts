/**
 * HashiCorp's boolean expression language (go-bexpr), as Consul uses it in `service-resolver`
 * subset filters, evaluated over a mesh endpoint.
 *
 * Grammar (go-bexpr `grammar/grammar.peg`): `or` binds looser than `and`, `not` is a prefix,
 * parentheses group. A match is `<selector> == | != | contains | not contains | matches |
 * not matches <value>`, `<selector> is empty | is not empty`, or `<value> in | not in <selector>`.
 * Values are "double-quoted" (Go escapes), `backquoted` (raw), numbers, or bare words.
 *
 * Selectors (Consul's health-entry names, mapped onto {@link BexprTarget}):
 * `Service.ID` → `id`, `Service.Address` → `address`, `Service.Port` → `port`,
 * `Service.Tags` → `tags`, `Service.Meta` → `metadata`, `Service.Meta.<key>` (also
 * `Service.Meta["<key>"]`) → `metadata[key]`. JSON-pointer selectors (`"/Service/Meta/version"`)
 * are accepted too. A missing meta key reads as the empty string.
 */
import { MeshError, quote } from '@proxyless/core';
import { compileRe2 } from './regex.js';

/** What a filter sees of an endpoint. `Endpoint` from `@proxyless/core` satisfies it. */
export interface BexprTarget {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
}

/** A compiled filter: true when the endpoint belongs to the subset. */
export type BexprPredicate = (target: BexprTarget) => boolean;

type Op = '==' | '!=' | 'in' | 'not in' | 'matches' | 'not matches' | 'is empty' | 'is not empty';

/** Parsed expression tree (exposed for tests and the admin view). */
export type BexprNode =
  | { readonly type: 'and' | 'or'; readonly left: BexprNode; readonly right: BexprNode }
  | { readonly type: 'not'; readonly operand: BexprNode }
  | {
      readonly type: 'match';
      readonly selector: readonly string[];
      readonly op: Op;
      readonly value?: string;
    };

class Parser {
  pos = 0;
  constructor(readonly src: string) {}

  fail(message: string): never {
    throw new Error(`${message} at position ${this.pos + 1}`);
  }
  ws(): boolean {
    const start = this.pos;
    while (this.pos < this.src.length && /[ \t\r\n]/.test(this.src[this.pos]!)) this.pos++;
    return this.pos > start;
  }
  /** Consume `word` when it stands alone (followed by whitespace, `(`, a quote or the end). */
  keyword(word: string, needSpaceAfter = true): boolean {
    if (!this.src.startsWith(word, this.pos)) return false;
    const next = this.src[this.pos + word.length];
    if (next !== undefined && /[A-Za-z0-9_./[]/.test(next)) return false;
    if (needSpaceAfter && next !== undefined && !/[ \t\r\n]/.test(next)) return false;
    this.pos += word.length;
    return true;
  }
  /** Try `fn`; on failure restore the position and return undefined. */
  attempt<T>(fn: () => T | undefined): T | undefined {
    const at = this.pos;
    const r = fn();
    if (r === undefined) this.pos = at;
    return r;
  }

  parse(): BexprNode {
    this.ws();
    if (this.pos >= this.src.length) this.fail('empty expression');
    const node = this.or();
    this.ws();
    if (this.pos < this.src.length) this.fail(`unexpected ${quote(this.src.slice(this.pos, this.pos + 12))}`);
    return node;
  }
  or(): BexprNode {
    const left = this.and();
    const r = this.attempt(() => (this.ws() && this.keyword('or') && this.ws() ? this.or() : undefined));
    return r ? { type: 'or', left, right: r } : left;
  }
  and(): BexprNode {
    const left = this.not();
    const r = this.attempt(() => (this.ws() && this.keyword('and') && this.ws() ? this.and() : undefined));
    return r ? { type: 'and', left, right: r } : left;
  }
  not(): BexprNode {
    const neg = this.attempt(() => (this.keyword('not') && this.ws() ? true : undefined));
    if (!neg) return this.group();
    const operand = this.not();
    // go-bexpr folds `not not x` into `x`.
    return operand.type === 'not' ? operand.operand : { type: 'not', operand };
  }
  group(): BexprNode {
    if (this.src[this.pos] === '(') {
      this.pos++;
      this.ws();
      const inner = this.or();
      this.ws();
      if (this.src[this.pos] !== ')') this.fail('unmatched parentheses');
      this.pos++;
      return inner;
    }
    return this.match();
  }
  match(): BexprNode {
    const at = this.pos;
    const first = this.operand();
    if (!first) this.fail('expected a selector or a value');
    // `<value> in|not in <selector>`
    const inOp = this.attempt<Op>(() => {
      if (!this.ws()) return undefined;
      if (this.keyword('in')) return this.ws() ? 'in' : undefined;
      if (this.keyword('not') && this.ws() && this.keyword('in')) return this.ws() ? 'not in' : undefined;
      return undefined;
    });
    if (inOp) {
      const sel = this.operand();
      if (sel?.kind !== 'selector') this.fail('invalid selector');
      return { type: 'match', selector: sel.path, op: inOp, value: first.raw };
    }
    if (first.kind !== 'selector') {
      this.pos = at;
      this.fail('expected a selector');
    }
    const unary = this.attempt<Op>(() => {
      if (!this.ws() || !this.keyword('is') || !this.ws()) return undefined;
      if (this.keyword('empty', false)) return 'is empty';
      if (this.keyword('not') && this.ws() && this.keyword('empty', false)) return 'is not empty';
      return undefined;
    });
    if (unary) return { type: 'match', selector: first.path, op: unary };
    const op = this.attempt<Op>(() => {
      const hadSpace = this.ws();
      if (this.src.startsWith('==', this.pos) || this.src.startsWith('!=', this.pos)) {
        const o = this.src.slice(this.pos, this.pos + 2) as Op;
        this.pos += 2;
        this.ws();
        return o;
      }
      if (!hadSpace) return undefined;
      if (this.keyword('contains')) return this.ws() ? 'in' : undefined;
      if (this.keyword('matches')) return this.ws() ? 'matches' : undefined;
      if (this.keyword('not') && this.ws()) {
        if (this.keyword('contains')) return this.ws() ? 'not in' : undefined;
        if (this.keyword('matches')) return this.ws() ? 'not matches' : undefined;
      }
      return undefined;
    });
    if (!op) this.fail(`expected an operator after ${quote(first.path.join('.'))}`);
    const value = this.operand();
    if (!value) this.fail('expected a value');
    return { type: 'match', selector: first.path, op, value: value.raw };
  }

  /** A selector, a number or a string literal (a bare selector is also a value: its text). */
  operand(): { kind: 'selector'; path: string[]; raw: string } | { kind: 'value'; raw: string } | undefined {
    const c = this.src[this.pos];
    if (c === undefined) return undefined;
    if (c === '"' || c === '`') {
      const s = this.string();
      if (c === '"' && s.startsWith('/')) {
        const path = s.slice(1).split('/');
        if (path.every((p) => /^[\p{L}\p{N}\-_.~:|]+$/u.test(p))) {
          return {
            kind: 'selector',
            path: path.map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')),
            raw: s,
          };
        }
      }
      return { kind: 'value', raw: s };
    }
    const num = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?/.exec(this.src.slice(this.pos));
    if (num) {
      const after = this.src[this.pos + num[0].length];
      if (after !== undefined && !/[ \t\r\n)]/.test(after)) this.fail('invalid number literal');
      this.pos += num[0].length;
      return { kind: 'value', raw: num[0] };
    }
    if (!/[A-Za-z]/.test(c)) return undefined;
    const path: string[] = [this.ident()];
    for (;;) {
      const d = this.src[this.pos];
      if (d === '.' && /[A-Za-z]/.test(this.src[this.pos + 1] ?? '')) {
        this.pos++;
        path.push(this.ident());
      } else if (d === '.' && /[0-9]/.test(this.src[this.pos + 1] ?? '')) {
        this.pos++;
        const m = /^[0-9]+/.exec(this.src.slice(this.pos))!;
        this.pos += m[0].length;
        path.push(m[0]);
      } else if (d === '[') {
        this.pos++;
        this.ws();
        const q = this.src[this.pos];
        if (q !== '"' && q !== '`') this.fail('invalid index');
        path.push(this.string());
        this.ws();
        if (this.src[this.pos] !== ']') this.fail('unclosed index expression');
        this.pos++;
      } else break;
    }
    return { kind: 'selector', path, raw: path.join('.') };
  }
  ident(): string {
    const m = /^[A-Za-z][A-Za-z0-9_/]*/.exec(this.src.slice(this.pos))!;
    this.pos += m[0].length;
    return m[0];
  }
  string(): string {
    const q = this.src[this.pos]!;
    const end = this.src.indexOf(q, this.pos + 1);
    if (q === '`') {
      if (end < 0) this.fail('unterminated string literal');
      const s = this.src.slice(this.pos + 1, end);
      this.pos = end + 1;
      return s;
    }
    // A Go double-quoted string: find the closing quote past escapes, then unquote as JSON does.
    let i = this.pos + 1;
    while (i < this.src.length && this.src[i] !== '"') i += this.src[i] === '\\' ? 2 : 1;
    if (i >= this.src.length) this.fail('unterminated string literal');
    const lit = this.src.slice(this.pos, i + 1);
    this.pos = i + 1;
    try {
      return JSON.parse(lit.replace(/\\x([0-9a-fA-F]{2})/g, '\\u00$1').replace(/\\a/g, '\\u0007')) as string;
    } catch {
      return this.fail(`invalid string literal ${lit}`);
    }
  }
}

/** Parse a filter into its tree. @throws MeshError `MESH_CONFIG_INVALID` on a syntax error. */
export function parseBexpr(expression: string): BexprNode {
  try {
    return new Parser(expression).parse();
  } catch (error) {
    throw filterError(expression, (error as Error).message);
  }
}

function filterError(expression: string, reason: string): MeshError {
  return new MeshError('MESH_CONFIG_INVALID', `filter ${quote(expression)}: ${reason}`, {
    details: {
      field: 'Filter',
      value: expression,
      issues: [{ field: 'Filter', value: expression, expected: `a valid bexpr filter (${reason})` }],
    },
  });
}

type Field = 'id' | 'address' | 'port' | 'tags' | 'meta' | 'metaKey';

function resolveSelector(path: readonly string[]): { field: Field; key?: string } | undefined {
  if (path[0] !== 'Service') return undefined;
  if (path.length === 2) {
    switch (path[1]) {
      case 'ID':
        return { field: 'id' };
      case 'Address':
        return { field: 'address' };
      case 'Port':
        return { field: 'port' };
      case 'Tags':
        return { field: 'tags' };
      case 'Meta':
        return { field: 'meta' };
    }
  }
  if (path.length === 3 && path[1] === 'Meta') return { field: 'metaKey', key: path[2] };
  return undefined;
}

const OPS_BY_FIELD: Record<Field, readonly Op[]> = {
  id: ['==', '!=', 'in', 'not in', 'matches', 'not matches', 'is empty', 'is not empty'],
  address: ['==', '!=', 'in', 'not in', 'matches', 'not matches', 'is empty', 'is not empty'],
  metaKey: ['==', '!=', 'in', 'not in', 'matches', 'not matches', 'is empty', 'is not empty'],
  port: ['==', '!='],
  tags: ['in', 'not in', 'is empty', 'is not empty'],
  meta: ['in', 'not in', 'is empty', 'is not empty'],
};

const SELECTORS = 'Service.ID, Service.Address, Service.Port, Service.Tags, Service.Meta, Service.Meta.<key>';

function compileNode(node: BexprNode, expression: string): BexprPredicate {
  switch (node.type) {
    case 'and': {
      const l = compileNode(node.left, expression);
      const r = compileNode(node.right, expression);
      return (t) => l(t) && r(t);
    }
    case 'or': {
      const l = compileNode(node.left, expression);
      const r = compileNode(node.right, expression);
      return (t) => l(t) || r(t);
    }
    case 'not': {
      const o = compileNode(node.operand, expression);
      return (t) => !o(t);
    }
    case 'match':
      return compileMatch(node, expression);
  }
}

function compileMatch(node: Extract<BexprNode, { type: 'match' }>, expression: string): BexprPredicate {
  const sel = resolveSelector(node.selector);
  const selText = node.selector.join('.');
  if (!sel) throw filterError(expression, `selector ${quote(selText)} is not valid (known: ${SELECTORS})`);
  if (!OPS_BY_FIELD[sel.field].includes(node.op)) {
    throw filterError(expression, `operator ${quote(node.op)} cannot be used on ${quote(selText)}`);
  }
  // The negative forms (`!=`, `not in`, `not matches`, `is not empty`) test the positive one and invert it.
  const v = node.value ?? '';
  let test: BexprPredicate;
  if (sel.field === 'port') {
    if (!/^-?[0-9]+$/.test(v))
      throw filterError(expression, `${quote(v)} is not an integer for Service.Port`);
    const n = Number(v);
    test = (t) => t.port === n;
  } else if (sel.field === 'tags') {
    test = node.op.endsWith('empty') ? (t) => t.tags.length === 0 : (t) => t.tags.includes(v);
  } else if (sel.field === 'meta') {
    test = node.op.endsWith('empty')
      ? (t) => Object.keys(t.metadata).length === 0
      : (t) => Object.hasOwn(t.metadata, v);
  } else {
    const key = sel.key ?? '';
    const read: (t: BexprTarget) => string =
      sel.field === 'id'
        ? (t) => t.id
        : sel.field === 'address'
          ? (t) => t.address
          : (t) => (Object.hasOwn(t.metadata, key) ? (t.metadata[key] ?? '') : '');
    if (node.op.endsWith('empty')) test = (t) => read(t).length === 0;
    else if (node.op.endsWith('matches')) {
      let re: RegExp;
      try {
        re = compileRe2(v, false);
      } catch (error) {
        throw filterError(
          expression,
          `regular expression ${quote(v)} does not compile: ${(error as Error).message}`,
        );
      }
      test = (t) => re.test(read(t));
    } else if (node.op.endsWith('in')) test = (t) => read(t).includes(v);
    else test = (t) => read(t) === v;
  }
  return node.op === '!=' || node.op.includes('not ') ? (t) => !test(t) : test;
}

/**
 * Compile a go-bexpr filter over endpoints.
 *
 * @example
 * const v2 = compileBexpr('Service.Meta.version == "2" and "canary" not in Service.Tags');
 * endpoints.filter(v2);
 * @throws MeshError `MESH_CONFIG_INVALID` on a syntax error, an unknown selector or an operator the
 * selector's type does not support; `details.value` is the expression.
 */
export function compileBexpr(expression: string): BexprPredicate {
  return compileNode(parseBexpr(expression), expression);
}

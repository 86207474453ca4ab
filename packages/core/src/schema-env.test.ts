import { describe, expect, it } from 'vitest';
import { Issues } from './issues.js';
import { Duration, env, Fields, Ratio, Type, validator } from './schema.js';
import { envFields, envIssues, envToDocument } from './schema-env.js';

/** A section with one variable per numeric kind (and a string one, which takes any digits). */
const schema = Fields({
  max: Type.Optional(Type.Integer({ minimum: 1, ...env('T_MAX', 'an integer') })),
  rate: Type.Optional(Type.Number({ minimum: 0, ...env('T_RATE', 'a number') })),
  ratio: Type.Optional(Ratio(env('T_RATIO', 'a ratio'))),
  wait: Type.Optional(Duration({ min: 1, ...env('T_WAIT', 'a duration') })),
  timeout: Type.Optional(
    Type.Union([Duration(), Type.Literal(false)], { ...env('T_TIMEOUT', 'a duration or off') }),
  ),
  // A decoder of its own that passes digits on as a string (as MESH_HEDGE_DELAY's does).
  delay: Type.Optional(Duration({ ...env('T_DELAY', 'a duration', { decode: (raw) => raw.trim() }) })),
  codes: Type.Optional(Type.Array(Type.Integer({ minimum: 1 }), { ...env('T_CODES', 'integers') })),
  zone: Type.Optional(Type.String({ ...env('T_ZONE', 'a string') })),
});
const check = validator(schema);

/** The issues of `vars` read as the section, as the env readers report them. */
function envProblems(vars: Record<string, string>): { document: unknown; issues: Issues } {
  const { document, names } = envToDocument(schema, vars);
  const found = new Issues();
  check.validate(document, '', found);
  const issues = new Issues();
  envIssues(found.list, names, issues);
  return { document, issues };
}

const HUGE = '99999999999999999999'; // Number(HUGE) is 100000000000000000000

describe('envToDocument: a number beyond Number.MAX_SAFE_INTEGER', () => {
  it.each(['T_MAX', 'T_WAIT', 'T_TIMEOUT', 'T_DELAY'])(
    '%s=99999999999999999999 (a count) is an error naming the variable and the value as written, never rounded',
    (name) => {
      const { issues } = envProblems({ [name]: HUGE });
      expect(issues.list).toHaveLength(1);
      const [issue] = issues.list;
      expect(issue?.field).toBe(name);
      expect(issue?.value).toBe(HUGE);
      expect(issue?.expected).toContain('is beyond 9007199254740991');
    },
  );

  it('a plain number (a rate) reads it as a config document reads the same digits (probe25 config defect 3)', () => {
    expect(envProblems({ T_RATE: HUGE })).toEqual({
      document: { rate: JSON.parse(HUGE) as number },
      issues: new Issues(),
    });
    expect(envProblems({ T_RATE: '9007199254740992' }).document).toEqual({ rate: 9007199254740992 });
    // Out of range, it says so, without a note on exactness.
    const { issues } = envProblems({ T_RATIO: HUGE });
    expect(issues.list).toHaveLength(1);
    expect(issues.list[0]).toMatchObject({ field: 'T_RATIO', value: HUGE });
    expect(issues.list[0]?.expected).not.toContain('beyond');
  });

  it('holds at the edge: MAX_SAFE_INTEGER is read, one more is not', () => {
    expect(envProblems({ T_MAX: '9007199254740991' })).toEqual({
      document: { max: 9007199254740991 },
      issues: new Issues(),
    });
    expect(envProblems({ T_MAX: '9007199254740992' }).issues.list[0]?.field).toBe('T_MAX');
    expect(envProblems({ T_WAIT: ' -99999999999999999999 ' }).issues.list[0]).toMatchObject({
      field: 'T_WAIT',
      value: ' -99999999999999999999 ',
    });
  });

  it('names the list item that is too large', () => {
    const { issues } = envProblems({ T_CODES: `503,${HUGE}` });
    expect(issues.list).toEqual([
      {
        field: 'T_CODES',
        expected: expect.stringContaining(`("${HUGE}" is not)`),
        value: `503,${HUGE}`,
      },
    ]);
  });

  it('leaves a string field its digits', () => {
    expect(envProblems({ T_ZONE: HUGE })).toEqual({ document: { zone: HUGE }, issues: new Issues() });
  });
});

describe('envToDocument: numbers as JSON writes them (probe30 config defect 1)', () => {
  /** [variable, value, the document it makes] */
  const READ: Array<[string, string, unknown]> = [
    ['T_MAX', '1e3', { max: 1000 }],
    ['T_MAX', '2.0', { max: 2 }],
    ['T_MAX', ' 5E+0 ', { max: 5 }],
    ['T_RATE', '1e2', { rate: 100 }],
    ['T_RATE', '0.5', { rate: 0.5 }],
    ['T_RATE', '-0', { rate: -0 }],
    ['T_RATIO', '2e-1', { ratio: 0.2 }],
    ['T_CODES', '1e2,2', { codes: [100, 2] }],
    // A duration: a JSON number of ms, or plain ms in its own notation (`.5`, `010`).
    ['T_WAIT', '1e3', { wait: 1000 }],
    ['T_WAIT', '.5e1', { wait: '.5e1' }], // neither: refused below
    ['T_WAIT', '.5', { wait: 0.5 }],
    ['T_WAIT', '010', { wait: 10 }],
    ['T_TIMEOUT', '1e3', { timeout: 1000 }],
    ['T_TIMEOUT', '.5', { timeout: 0.5 }],
    // A field's own decoder reads what is not a number; a number is the field's number.
    ['T_DELAY', '1e3', { delay: 1000 }],
    ['T_DELAY', '5s', { delay: '5s' }],
  ];
  it.each(READ)('%s=%s', (name, raw, document) => {
    expect(envToDocument(schema, { [name]: raw }).document).toEqual(document);
  });

  /** [variable, value]: what JSON does not write (or not as the field's kind). */
  const REFUSED: Array<[string, string]> = [
    ['T_MAX', '010'],
    ['T_MAX', '+5'],
    ['T_MAX', '1.5e0'],
    ['T_MAX', '5.'],
    ['T_RATE', '010'],
    ['T_RATE', '.5'],
    ['T_RATE', '5.'],
    ['T_RATE', '+5'],
    ['T_RATE', '0x10'],
    ['T_RATE', 'Infinity'],
    ['T_RATIO', '.5'],
    ['T_CODES', '1,02'],
    ['T_WAIT', '.5e1'],
    ['T_WAIT', '+5'],
    ['T_TIMEOUT', '+5'],
  ];
  it.each(REFUSED)('%s=%s is an error naming the variable, quoting the value', (name, raw) => {
    const { issues } = envProblems({ [name]: raw });
    expect(issues.list).toEqual([{ field: name, expected: expect.any(String), value: raw }]);
  });

  it('says how JSON writes a number it refuses', () => {
    expect(envProblems({ T_RATE: '.5' }).issues.list[0]?.expected).toBe(
      'a number ≥ 0; numbers are read as JSON writes them: 0.5, not .5',
    );
    expect(envProblems({ T_MAX: '+5' }).issues.list[0]?.expected).toBe(
      'an integer ≥ 1; numbers are read as JSON writes them: 5, not +5',
    );
  });
});

describe('envFields', () => {
  it('lists a schema once and hands every caller its own list (changing one changes nothing after)', () => {
    const schema = Type.Object({
      a: Type.Optional(Type.Integer(env('MESH_A', 'a'))),
      b: Type.Optional(Type.Object({ c: Type.Optional(Duration(env('MESH_C', 'c'))) })),
    });
    const first = envFields(schema);
    expect(first.map((f) => f.binding.name)).toEqual(['MESH_A', 'MESH_C']);
    first.pop();
    expect(envFields(schema).map((f) => f.path.join('.'))).toEqual(['a', 'b.c']);
    expect(envFields(schema)).not.toBe(envFields(schema));
    expect(envToDocument(schema, { MESH_C: '2s' }).document).toEqual({ b: { c: '2s' } });
  });
});

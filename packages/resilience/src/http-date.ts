/**
 * HTTP-date (RFC 9110 §5.6.7): the preferred IMF-fixdate and the two obsolete forms a recipient must
 * still accept, and nothing else. `Date.parse` is far more lenient — it reads `1.5`, `-1` or `2`
 * as dates — so it is not used.
 */

const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const DAY_LONG = '(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)';
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH = `(${MONTHS.join('|')})`;
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';

/** `Sun, 06 Nov 1994 08:49:37 GMT` */
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
/** `Sunday, 06-Nov-94 08:49:37 GMT` */
const RFC850 = new RegExp(`^${DAY_LONG}, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`);
/** `Sun Nov  6 08:49:37 1994` (the day is space-padded) */
const ASCTIME = new RegExp(`^${DAY} ${MONTH} ( \\d|\\d{2}) ${TIME} (\\d{4})$`);

/**
 * An HTTP-date as Unix epoch ms, or `undefined` when `value` is not one. A two-digit rfc850 year
 * that would be more than 50 years after `nowWallMs` is the most recent past year with those
 * digits (RFC 9110 §5.6.7).
 */
export function parseHttpDate(value: string, nowWallMs: number): number | undefined {
  let m = IMF_FIXDATE.exec(value);
  if (m !== null) return toEpoch(Number(m[3]), m[2]!, m, 1, 4);
  m = ASCTIME.exec(value);
  if (m !== null) return toEpoch(Number(m[6]), m[1]!, m, 2, 3);
  m = RFC850.exec(value);
  if (m === null) return undefined;
  const nowYear = new Date(nowWallMs).getUTCFullYear();
  let year = Math.floor(nowYear / 100) * 100 + Number(m[3]);
  if (year > nowYear + 50) year -= 100;
  return toEpoch(year, m[2]!, m, 1, 4);
}

/** The instant of a matched date: its year, month name, and where its day and `hh:mm:ss` groups are. */
function toEpoch(
  year: number,
  month: string,
  m: RegExpExecArray,
  dayAt: number,
  timeAt: number,
): number | undefined {
  const day = Number(m[dayAt]);
  const hour = Number(m[timeAt]);
  const minute = Number(m[timeAt + 1]);
  const second = Number(m[timeAt + 2]);
  // The grammar allows second 60 (a leap second); it is read as the first second of the next minute.
  if (day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(year, MONTHS.indexOf(month), day);
  // 31 Feb rolls over into March: not a date.
  if (date.getUTCDate() !== day) return undefined;
  return date.getTime() + ((hour * 60 + minute) * 60 + second) * 1000;
}

// A node:test reporter that prints one JSON line per finished test, for run.ts to count and compare
// between modes. Suites are left out; a test file that fails as a whole (does not load, or exits
// with an error outside any test) is one failed entry named "(file)".
export default async function* reporter(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const d = event.data;
    if (d.details?.type === 'suite') continue;
    const wrapper = d.file !== undefined && d.name === d.file;
    if (wrapper && event.type === 'test:pass') continue;
    let result = event.type === 'test:pass' ? 'pass' : 'fail';
    if (d.skip !== undefined) result = 'skip';
    else if (d.todo !== undefined) result = 'todo';
    const error = d.details?.error;
    const message = error ? String(error.cause?.message ?? error.message ?? error).split('\n')[0] : undefined;
    const name = wrapper ? '(file)' : d.name;
    yield `${JSON.stringify({ result, file: d.file, name, nesting: d.nesting, message })}\n`;
  }
}

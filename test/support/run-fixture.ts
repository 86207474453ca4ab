import { spawn } from 'node:child_process';

/**
 * Run a fixture script in its own Node process (against the sources) and wait for it to exit on its
 * own: `code` is its exit code, or a message when it was still alive after 20 s. With
 * `maxOpenFiles`, the process runs under that file-descriptor limit (`ulimit -n`, Linux shells).
 */
export async function runFixture(
  script: string,
  args: readonly string[] = [],
  options: { maxOpenFiles?: number } = {},
): Promise<{ code: number | string; out: string; err: string }> {
  const node = [process.execPath, '--conditions=@proxyless/source', '--import', 'tsx', script, ...args];
  const child =
    options.maxOpenFiles === undefined
      ? spawn(node[0]!, node.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('/bin/sh', ['-c', `ulimit -n ${options.maxOpenFiles} && exec "$@"`, 'sh', ...node], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const code = await new Promise<number | string>((resolve) => {
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      resolve('did not exit within 20 s');
    }, 20_000);
    child.on('exit', (c) => {
      clearTimeout(guard);
      resolve(c ?? -1);
    });
  });
  return { code, out, err };
}

/**
 * Starts two greeters and a frontend as separate processes, wired only by environment variables,
 * sends a few requests to the frontend, prints what came back, and stops everything.
 *
 *   pnpm start            (in this folder; `proxyless` is the built package, as installed from npm)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));

function run(file: string, env: Record<string, string>): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', here(file)], {
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.once('exit', (code) => reject(new Error(`${file} exited with ${code} before listening`)));
  });
}

export async function main(requests = 4): Promise<string[]> {
  const children: ChildProcess[] = [];
  try {
    const g1 = await run('./greeter.ts', { INSTANCE: 'greeter-1' });
    children.push(g1.child);
    const g2 = await run('./greeter.ts', { INSTANCE: 'greeter-2' });
    children.push(g2.child);
    const fe = await run('./frontend.ts', {
      MESH_SERVICE_NAME: 'frontend',
      MESH_ENDPOINTS_GREETER: `127.0.0.1:${g1.port},127.0.0.1:${g2.port}`,
    });
    children.push(fe.child);
    const lines: string[] = [];
    for (let i = 0; i < requests; i++) {
      const res = await fetch(`http://127.0.0.1:${fe.port}/?name=reader-${i}`);
      lines.push(await res.text());
    }
    return lines;
  } finally {
    for (const c of children) c.kill('SIGTERM');
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().then(
    (lines) => {
      for (const l of lines) process.stdout.write(`${l}\n`);
    },
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`);
      process.exitCode = 1;
    },
  );
}

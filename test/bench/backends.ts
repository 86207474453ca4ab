import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export interface Backend {
  port: number;
  stop(): Promise<void>;
}

/** Start `backend.mjs` in its own process; resolves with its port. */
export async function startBackend(delayMs = 0): Promise<Backend> {
  const child: ChildProcess = spawn(
    process.execPath,
    [fileURLToPath(new URL('./backend.mjs', import.meta.url)), String(delayMs)],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  const port = Number(chunk.toString().trim());
  return {
    port,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.stdin!.end();
      child.kill('SIGTERM');
      await exited;
    },
  };
}

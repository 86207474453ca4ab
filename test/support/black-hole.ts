import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';

/**
 * A listening socket whose owner never accepts: a stopped process with a full accept queue. The
 * kernel drops further SYNs, so a connect to it neither succeeds nor fails — only a connect timeout
 * ends it (what a black-holed endpoint does: a dead node whose address is still listed).
 */
export async function blackHole(): Promise<{ port: number; close(): void }> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '-e',
      "const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>console.log(s.address().port))",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
  const port = Number(String(chunk).trim());
  child.kill('SIGSTOP');
  // Linux queues backlog + 1 completed handshakes: fill the queue, then connects hang.
  const fillers: net.Socket[] = [];
  await new Promise<void>((resolve) => {
    let connected = 0;
    for (let i = 0; i < 4; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      s.on('connect', () => {
        if (++connected === 2) resolve();
      });
      fillers.push(s);
    }
  });
  return {
    port,
    close() {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
    },
  };
}

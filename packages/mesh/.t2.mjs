import { createRequire } from 'node:module';
const t0=performance.now();
await import(process.argv[2]);
const t1=performance.now();
const req = createRequire(import.meta.url);
const keys = Object.keys(req.cache);
const by = {};
for (const k of keys) { const m = k.match(/node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/); const p = m? m[1] : k; by[p]=(by[p]||0)+1; }
console.log(process.argv[2], (t1-t0).toFixed(1), 'ms', keys.length, 'cjs files', JSON.stringify(by));

import { createMesh } from 'proxyless';
const retry = process.argv[2] === 'noretry' ? false : undefined;
const mesh = createMesh({ env: {}, services: { bench: { endpoints: `127.0.0.1:1`, ...(retry === false ? { retry: false } : {}) } } });
const t = performance.now();
try { await mesh.request('http://bench/'); } catch (e) { console.log(e.code, (performance.now() - t).toFixed(0), 'ms'); }
console.log(mesh.stats('bench')?.roles);
await mesh.close();

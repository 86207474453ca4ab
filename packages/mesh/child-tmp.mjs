const t0 = performance.now();
const { createMesh } = await import(process.argv[2] ?? 'proxyless');
const t1 = performance.now();
const mesh = createMesh({ env: {}, configFile: '/tmp/mesh1000.json' });
const t2 = performance.now();
await mesh.close();
console.log((t1 - t0).toFixed(1), (t2 - t1).toFixed(1), (t2 - t0).toFixed(1));

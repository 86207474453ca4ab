const t0 = performance.now();
await import('./floor2-tmp.mjs');
console.log((performance.now() - t0).toFixed(1));

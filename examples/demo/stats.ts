/** Per-endpoint request counts and latency percentiles for the demo's tables. */
export class EndpointStats {
  #lat = new Map<string, number[]>();
  #errors = 0;

  record(endpoint: string, ms: number): void {
    let l = this.#lat.get(endpoint);
    if (!l) {
      l = [];
      this.#lat.set(endpoint, l);
    }
    l.push(ms);
  }

  error(): void {
    this.#errors++;
  }

  get errors(): number {
    return this.#errors;
  }

  table(title: string): string {
    const rows = [...this.#lat.entries()].sort(([a], [b]) => a.localeCompare(b));
    const total = rows.reduce((n, [, l]) => n + l.length, 0);
    const lines = [
      title,
      `  ${'endpoint'.padEnd(12)} ${'requests'.padStart(8)} ${'share'.padStart(7)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)}`,
    ];
    for (const [ep, l] of rows) {
      const s = [...l].sort((a, b) => a - b);
      const q = (p: number): number => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] ?? 0;
      lines.push(
        `  ${ep.padEnd(12)} ${String(l.length).padStart(8)} ${`${((l.length / total) * 100).toFixed(1)}%`.padStart(7)} ${q(0.5).toFixed(2).padStart(8)} ${q(0.99).toFixed(2).padStart(8)}`,
      );
    }
    lines.push(`  failed requests: ${this.#errors}`);
    return lines.join('\n');
  }
}

import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshError } from '@proxyless/core';
import { describe, expect, it, vi } from 'vitest';
import { formatAccessLogLine, openAccessLog, responseFlags } from './access-log.js';
import type { CallEventLike } from './events.js';

const ev = (type: string, extra: Partial<CallEventLike> = {}): CallEventLike => ({
  type,
  at: 0,
  attempt: 1,
  ...extra,
});

describe('responseFlags', () => {
  it('has no flag for a plain success', () => {
    expect(responseFlags({ status: 200 })).toEqual([]);
    expect(responseFlags({ status: 503 })).toEqual([]);
  });

  it('maps each MeshError code to its Envoy flag', () => {
    const cases: Array<[ConstructorParameters<typeof MeshError>[0], string]> = [
      ['MESH_NO_ENDPOINTS', 'UH'],
      ['MESH_CONNECT_FAILED', 'UF'],
      ['MESH_TIMEOUT', 'UT'],
      ['MESH_CIRCUIT_OPEN', 'UO'],
      ['MESH_CONCURRENCY_LIMIT', 'UO'],
      ['MESH_RATE_LIMITED', 'RL'],
      ['MESH_FAULT_INJECTED', 'FI'],
      ['MESH_UPSTREAM_RESET', 'UC'],
    ];
    for (const [code, flag] of cases) {
      expect(responseFlags({ error: new MeshError(code, 'x') }), code).toEqual([flag]);
    }
  });

  it('reads raw undici and syscall codes, also from the cause', () => {
    expect(responseFlags({ error: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) })).toEqual(['UF']);
    expect(
      responseFlags({ error: Object.assign(new Error('x'), { code: 'UND_ERR_HEADERS_TIMEOUT' }) }),
    ).toEqual(['UT']);
    expect(responseFlags({ error: Object.assign(new Error('x'), { code: 'UND_ERR_SOCKET' }) })).toEqual([
      'UC',
    ]);
    const wrapped = new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) });
    expect(responseFlags({ error: wrapped })).toEqual(['UF']);
    expect(responseFlags({ error: new Error('no code') })).toEqual([]);
    expect(
      responseFlags({ error: Object.assign(new Error('x'), { code: 'MESH_NO_HEALTHY_ENDPOINTS' }) }),
    ).toEqual(['UH']);
  });

  it('flags DC when the caller stopped the call, whatever its abort reason carries', () => {
    expect(responseFlags({ error: new Error('aborted'), status: 200, callerAborted: true })).toEqual(['DC']);
    expect(responseFlags({ error: Object.assign(new Error('x'), { code: 'UND_ERR_ABORTED' }) })).toEqual([
      'DC',
    ]);
    expect(responseFlags({ error: Object.assign(new Error('x'), { code: 'ABORT_ERR' }) })).toEqual(['DC']);
    // An abort the mesh made itself (a hedge that lost) is no downstream termination.
    expect(responseFlags({ error: new MeshError('MESH_ABORTED', 'x') })).toEqual([]);
  });

  it('flags URX when retries were made and the retry stage gave up at max_retries', () => {
    const events = [
      ev('retry', { reason: '5xx' }),
      ev('retry', { reason: '5xx' }),
      ev('give_up', { reason: 'max_retries (5xx)' }),
    ];
    expect(responseFlags({ status: 503, events })).toEqual(['URX']);
    // maxRetries 0: nothing was retried, so the limit was not "exceeded".
    expect(responseFlags({ status: 503, events: [ev('give_up', { reason: 'max_retries (5xx)' })] })).toEqual(
      [],
    );
  });

  it('flags UO when the retry budget or the concurrent-retry limit refused a retry', () => {
    expect(
      responseFlags({ status: 503, events: [ev('give_up', { reason: 'budget_exhausted (5xx)' })] }),
    ).toEqual(['UO']);
    expect(
      responseFlags({ status: 503, events: [ev('give_up', { reason: 'retry_overflow (5xx)' })] }),
    ).toEqual(['UO']);
    // A retry the open breaker refused: the call returns the last 503, flagged as the overflow it is.
    expect(
      responseFlags({
        status: 503,
        events: [
          ev('retry', { reason: '5xx' }),
          ev('circuit_open', { reason: 'open' }),
          ev('give_up', { reason: 'circuit_open (5xx)' }),
        ],
      }),
    ).toEqual(['UO']);
  });

  it('flags injected faults: DI for a delay, FI for an abort', () => {
    expect(responseFlags({ status: 200, events: [ev('fault', { reason: 'delay', delayMs: 5 })] })).toEqual([
      'DI',
    ]);
    expect(responseFlags({ status: 503, events: [ev('fault', { reason: 'abort', status: 503 })] })).toEqual([
      'FI',
    ]);
    const both = [
      ev('fault', { reason: 'delay' }),
      ev('fault', { reason: 'abort', code: 'MESH_FAULT_INJECTED' }),
    ];
    expect(responseFlags({ error: new MeshError('MESH_FAULT_INJECTED', 'x'), events: both })).toEqual([
      'DI',
      'FI',
    ]);
  });

  it('keeps no flag from an attempt a retry recovered from', () => {
    const events = [
      ev('timeout', { reason: 'per_try', code: 'MESH_TIMEOUT' }),
      ev('retry', { reason: 'reset' }),
    ];
    expect(responseFlags({ status: 200, events })).toEqual([]);
  });

  it('combines the final error with a give-up in Envoy order', () => {
    const events = [
      ev('retry', { reason: 'connect-failure' }),
      ev('give_up', { reason: 'max_retries (connect-failure)' }),
    ];
    expect(responseFlags({ error: new MeshError('MESH_CONNECT_FAILED', 'x'), events })).toEqual([
      'UF',
      'URX',
    ]);
  });

  it('reads rate-limit and limit rejections from events when the error has no code', () => {
    const error = new Error('rejected');
    expect(responseFlags({ error, events: [ev('rejected', { code: 'MESH_RATE_LIMITED' })] })).toEqual(['RL']);
    expect(responseFlags({ error, events: [ev('rejected', { code: 'MESH_CONCURRENCY_LIMIT' })] })).toEqual([
      'UO',
    ]);
    expect(responseFlags({ error, events: [ev('circuit_open')] })).toEqual(['UO']);
  });
});

describe('formatAccessLogLine', () => {
  it('writes one JSON object per line', () => {
    const line = formatAccessLogLine({
      start_time: '2026-01-01T00:00:00.000Z',
      method: 'GET',
      path: '/a',
      upstream_cluster: 'payments',
      upstream_host: '10.0.0.1:80',
      response_code: 200,
      response_flags: '-',
      duration_ms: 1.5,
      attempts: 1,
      trace_id: '-',
      error_code: '-',
    });
    expect(line.endsWith('\n')).toBe(true);
    expect(line.split('\n')).toHaveLength(2);
    expect(JSON.parse(line)).toMatchObject({ method: 'GET', response_code: 200 });
  });
});

describe('openAccessLog', () => {
  it('appends lines to a file and closes once', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'mesh-access-')), 'access.log');
    const first = openAccessLog(path);
    first.write('{"a":1}\n');
    await first.close();
    const second = openAccessLog(path);
    second.write('{"a":2}\n');
    const closing = second.close();
    expect(second.close()).toBe(closing);
    await closing;
    expect(readFileSync(path, 'utf8')).toBe('{"a":1}\n{"a":2}\n');
  });

  it.each(['STDOUT', 'Stdout', 'stdout'])(
    'takes %s for the standard output, not a file name',
    async (target) => {
      const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
      try {
        const sink = openAccessLog(target);
        sink.write('{"a":1}\n');
        await sink.close();
        expect(write).toHaveBeenCalledWith('{"a":1}\n');
      } finally {
        write.mockRestore();
      }
      expect(existsSync(target)).toBe(false);
    },
  );

  it('takes STDERR for the standard error', async () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      openAccessLog('STDERR').write('x\n');
      expect(write).toHaveBeenCalledWith('x\n');
    } finally {
      write.mockRestore();
    }
  });

  it('rejects a path whose directory does not exist, naming the setting and the path', () => {
    const path = '/nonexistent-dir/for/sure/access.log';
    let error: unknown;
    try {
      openAccessLog(path);
    } catch (e) {
      error = e;
    }
    expect(MeshError.is(error, 'MESH_CONFIG_INVALID')).toBe(true);
    expect((error as MeshError).details).toMatchObject({ field: 'MESH_ACCESS_LOG', value: path });
    expect((error as MeshError).message).toContain(`MESH_ACCESS_LOG: expected`);
    expect((error as MeshError).message).toContain(`"${path}" (its directory does not exist, ENOENT)`);
  });

  it('rejects a directory, under the field it is given', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mesh-access-'));
    expect(() => openAccessLog(dir, { field: 'telemetry.accessLog' })).toThrow(
      /^telemetry\.accessLog: expected .* \(it is a directory, EISDIR\)$/,
    );
  });

  it.runIf(existsSync('/dev/full'))(
    'reports the first write failure (disk full) once, then drops lines without crashing',
    async () => {
      const errors: Error[] = [];
      const published: unknown[] = [];
      const onPublish = (m: unknown): void => void published.push(m);
      subscribe('proxyless:telemetry:access_log_error', onPublish);
      try {
        let reported = (): void => undefined;
        const failed = new Promise<void>((resolve) => {
          reported = resolve;
        });
        const sink = openAccessLog('/dev/full', {
          onError: (e) => {
            errors.push(e);
            reported();
          },
        });
        sink.write('x\n');
        await failed;
        sink.write('y\n');
        await sink.close();
        expect(errors).toHaveLength(1);
        expect((errors[0] as NodeJS.ErrnoException).code).toBe('ENOSPC');
        expect(published).toEqual([{ path: '/dev/full', error: errors[0] }]);
      } finally {
        unsubscribe('proxyless:telemetry:access_log_error', onPublish);
      }
    },
  );
});

/**
 * Reading the TLS material of a Consul connection (the Go client's `SetupTLSConfig` with
 * hashicorp/go-rootcerts): CA file, CA directory, client certificate and key.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MeshError, quote } from '@proxyless/core';
import type { ConsulTlsOptions } from './http.js';

/** The PEM material for undici's `connect` options. */
export interface TlsMaterial {
  ca?: string[];
  cert?: string;
  key?: string;
}

function invalid(field: string, value: string, expected: string, cause?: unknown): MeshError {
  return new MeshError('MESH_CONFIG_INVALID', `${field}: expected ${expected}, got ${quote(value)}`, {
    ...(cause !== undefined ? { cause } : {}),
    details: { field, value, issues: [{ field, value, expected }] },
  });
}

function readPem(file: string, field: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw invalid(field, file, `a readable PEM file (${code})`, error);
  }
}

/**
 * Every file under `dir` (recursively, in name order), each of which must hold a PEM
 * certificate — go-rootcerts `LoadCAPath` fails on a file it cannot load, and so does this.
 */
function readCaPath(dir: string, field: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      throw invalid(field, d, `a readable directory of PEM CA files (${code})`, error);
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(d, e.name);
      if (e.isDirectory()) walk(path);
      else {
        const pem = readPem(path, field);
        if (!pem.includes('-----BEGIN CERTIFICATE-----'))
          throw invalid(field, path, 'only PEM CA certificates in the directory');
        out.push(pem);
      }
    }
  };
  walk(dir);
  if (!out.length) throw invalid(field, dir, 'a directory holding at least one PEM CA file');
  return out;
}

/** Read the configured files; throws `MESH_CONFIG_INVALID` naming the field. */
export function readTlsFiles(tls: ConsulTlsOptions): TlsMaterial {
  const ca: string[] = [];
  if (tls.ca !== undefined) ca.push(tls.ca);
  else if (tls.caFile) ca.push(readPem(tls.caFile, 'tls.caFile'));
  if (tls.caPath) ca.push(...readCaPath(tls.caPath, 'tls.caPath'));
  const cert = tls.cert ?? (tls.certFile ? readPem(tls.certFile, 'tls.certFile') : undefined);
  const key = tls.key ?? (tls.keyFile ? readPem(tls.keyFile, 'tls.keyFile') : undefined);
  if ((cert === undefined) !== (key === undefined)) {
    const field = cert === undefined ? 'tls.cert' : 'tls.key';
    throw new MeshError('MESH_CONFIG_INVALID', `${field}: both client cert and client key must be provided`, {
      details: {
        field,
        value: undefined,
        issues: [{ field, value: undefined, expected: 'client cert and key together' }],
      },
    });
  }
  return {
    ...(ca.length ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
  };
}

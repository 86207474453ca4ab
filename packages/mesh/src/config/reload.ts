/**
 * `mesh.reloadConfig()`: ask the config document's source to read again, and settle with the
 * outcome of what it holds by then.
 */

import { MeshError } from '@proxyless/core';
import type { ConfigApplier } from '../config-apply.js';
import type { ConfigSource } from './source.js';

/**
 * Reload `source` and settle with its outcome. The latest thing the source gave by the time its
 * reload is done was rejected — a version that fails validation, or a read that failed, which the
 * source reports (the file does) —: the promise rejects with that error, after `config_rejected`;
 * the last good configuration stays in force. That holds too when the reload delivered nothing new
 * because the source had already given (and the mesh rejected) what it holds: a source delivers
 * no unchanged content twice. (A rejection the watch met before the reload's own read succeeded,
 * such as a half-written file, is not the reload's outcome: the good version read since clears
 * it.) A failed `reload()` call is over when one succeeds: the source is reachable again and the
 * version in force is still its latest.
 *
 * @param stopped whether the mesh has been closed meanwhile: a failure is then not reported.
 */
export function reloadSource(
  source: ConfigSource,
  documents: ConfigApplier,
  stopped: () => boolean,
): Promise<void> {
  const before = documents.outcomes;
  const settled = (): Promise<void> => {
    if (documents.outcomes === before && documents.lastRejectionKind === 'reload')
      documents.reloadRecovered();
    // Only a late retransmission was rejected, and the source holds the version in force.
    if (documents.outdatedOnly(source)) return Promise.resolve();
    return documents.lastRejection !== undefined
      ? Promise.reject(documents.lastRejection)
      : Promise.resolve();
  };
  // A source whose `reload()` itself fails is reported as its reported errors are, once.
  const failed = (error: unknown): Promise<void> => {
    if (documents.outcomes > before && documents.lastRejection !== undefined) return settled();
    const e = MeshError.is(error)
      ? error
      : new MeshError(
          'MESH_CONFIG_INVALID',
          `config source ${source.name}: reload failed: ${(error as Error | undefined)?.message ?? String(error)}`,
          { cause: error },
        );
    if (!stopped()) documents.reject(e, undefined, true, 'reload');
    return Promise.reject(e);
  };
  try {
    return Promise.resolve(source.reload()).then(settled, failed);
  } catch (error) {
    return failed(error);
  }
}

/**
 * The warnings of the configuration in force (settings that cannot work as written), reported
 * once each: logged and fired as `config_warning` events.
 */

import type { Emitter, Logger } from '@proxyless/core';
import type { MeshEvent } from '../api.js';
import type { Warning } from './store.js';

/**
 * Reports each warning of the configuration in force once: a new version that keeps a warned
 * setting as it was does not warn again (one that fixes it and breaks it again does).
 *
 * While the mesh is being built no listener can hear a warning (they subscribe once `createMesh`
 * returns): the warnings of the configuration in force are held — those of a version a source
 * delivered meanwhile replacing those of the first. Once built ({@link stopHolding}), a new
 * version warns at once; the held ones are reported on {@link release} (right after `createMesh`
 * returns, so listeners added then hear them) unless a newer version warned first.
 */
export class ConfigWarnings {
  readonly #logger: Logger;
  readonly #events: Emitter<MeshEvent>;
  /** The warnings already reported for the configuration in force. */
  #warned = new Set<string>();
  #held: readonly Warning[] | undefined;
  #holding = false;

  constructor(logger: Logger, events: Emitter<MeshEvent>) {
    this.#logger = logger;
    this.#events = events;
  }

  /** Hold `warnings` (those of the first version) until {@link release}. */
  hold(warnings: readonly Warning[]): void {
    this.#holding = true;
    this.#held = warnings;
  }

  /** The mesh is built: a new version's warnings are reported at once. */
  stopHolding(): void {
    this.#holding = false;
  }

  /** Report the warnings held, unless a newer version warned first. */
  release(): void {
    const held = this.#held;
    this.#held = undefined;
    if (held !== undefined) this.report(held);
  }

  /** Report the warnings of the configuration now in force. */
  report(warnings: readonly Warning[]): void {
    if (this.#holding) {
      this.#held = warnings;
      return;
    }
    // A version applied since the mesh was built: its warnings are the ones in force now.
    this.#held = undefined;
    const now = new Set<string>();
    for (const { service, ...issue } of warnings) {
      const key = JSON.stringify([service ?? null, issue.field, issue.expected, issue.value ?? null]);
      now.add(key);
      if (this.#warned.has(key)) continue;
      this.#logger.warn('config setting cannot work as written', { service, ...issue });
      this.#events.fire({ type: 'config_warning', service, issue });
    }
    this.#warned = now;
  }
}

/** One attempt of a retried call: its handler, which reports to the call (retry-call.ts). */
import type { IncomingHttpHeaders } from 'node:http';
import { type CallContext, MeshError, type MeshHandler } from '@proxyless/core';
import type { Dispatcher } from 'undici';
import type { RetryCall } from './retry-call.js';

/**
 * A retried response's body is drained (and kept) during the backoff up to this size; a larger one
 * is dropped with its connection at once.
 */
export const DRAIN_LIMIT = 64 * 1024;

/** One attempt's handler: reports to its call, which decides what reaches the caller. */
export class RetryAttempt implements MeshHandler {
  controller: Dispatcher.DispatchController | undefined;
  /** Set when this attempt's response is being drained while the backoff before its retry runs. */
  draining = false;
  drained = 0;
  settled = false;
  /**
   * What this attempt answered, kept while it is retried: the caller gets it if the circuit
   * breaker refuses the retry. The head, the drained body (`undefined` once cut: past the drain
   * limit, broken, or not ended when the backoff was over) and trailers; or the error.
   */
  head: { status: number; headers: IncomingHttpHeaders; text: string | undefined } | undefined;
  kept: Buffer[] | undefined;
  trailers: IncomingHttpHeaders | undefined;
  failure: Error | undefined;
  constructor(
    readonly call: RetryCall,
    readonly ctx: CallContext,
  ) {}
  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    this.call.attemptStarted(this, controller);
  }
  onRequestUpgrade(
    _c: Dispatcher.DispatchController,
    s: number,
    h: IncomingHttpHeaders,
    socket: never,
  ): void {
    this.call.upgraded(this, s, h, socket);
  }
  onResponseStarted(): void {
    if (!this.draining) (this.call.handler as { onResponseStarted?: () => void }).onResponseStarted?.();
  }
  onResponseStart(
    _c: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    text?: string,
  ): void {
    this.call.head(this, status, headers, text);
  }
  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.draining) {
      if (this.settled) return;
      this.drained += chunk.length;
      if (this.drained > DRAIN_LIMIT) {
        this.drop('retried response dropped: its body is past the drain limit');
        return;
      }
      this.kept?.push(chunk);
      return;
    }
    if (!this.settled) this.call.handler.onResponseData?.(this.call.relay, chunk);
  }
  onResponseEnd(_c: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.call.end(this, trailers);
  }
  onResponseError(_c: Dispatcher.DispatchController, error: Error): void {
    this.call.error(this, error);
  }

  /**
   * Stop draining: the body is not kept, and the attempt is aborted, so undici closes its
   * connection instead of reusing it (Envoy resets the upstream stream of a retried response).
   */
  drop(why: string): void {
    this.settled = true;
    this.kept = undefined;
    // The attempt answered (a retriable status): telemetry counts it by that status, not as an error.
    this.controller?.abort(new MeshError('MESH_ABORTED', why, { details: { reason: 'retry_dropped' } }));
  }
}

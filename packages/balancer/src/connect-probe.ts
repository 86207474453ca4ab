import type { ConnectProbe } from './connectivity.js';

/**
 * The default reconnect probe: open a TCP connection to `address:port` and close it at once.
 * It proves the endpoint accepts connections, not that a TLS handshake would succeed: a mesh
 * with TLS passes a probe that also completes the handshake.
 */
export const tcpConnectProbe: ConnectProbe = (endpoint, signal) =>
  new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    // `node:net` at the first probe, not when the mesh is imported.
    const socket = process
      .getBuiltinModule('node:net')
      .connect({ host: endpoint.address, port: endpoint.port });
    const onAbort = (): void => {
      socket.destroy();
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve();
    });
    socket.once('error', (error) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(error);
    });
  });

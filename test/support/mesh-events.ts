import type { Mesh, MeshEvent } from 'proxyless';

/** The next mesh event matching `pred` (event-driven; the caller bounds the wait with the test timeout). */
export function nextEvent(mesh: Mesh, pred: (e: MeshEvent) => boolean): Promise<MeshEvent> {
  return new Promise((resolve) => {
    const sub = mesh.onEvent((e) => {
      if (pred(e)) {
        sub.dispose();
        resolve(e);
      }
    });
  });
}

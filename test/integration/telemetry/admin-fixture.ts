/** A mutable mesh view for admin-server tests: the test changes it, the providers read it. */
import type { EventView, ServiceView } from '@proxyless/telemetry';

export interface Fixture {
  services: ServiceView[];
  ready: boolean;
  config: unknown;
  events: EventView[];
}

export function fixture(): Fixture {
  return {
    ready: false,
    config: {
      version: 3,
      services: {
        payments: { retry: { maxRetries: { value: 2, layer: 'defaults', version: 0 } } },
        inventory: { timeout: { value: '2s', layer: 'env', version: 3 } },
      },
    },
    events: [{ time: '2026-01-01T00:00:00.000Z', type: 'config_applied', detail: 'config version 3' }],
    services: [
      {
        name: 'payments',
        source: 'consul',
        version: 12,
        resolved: true,
        stale: false,
        policy: 'peak_ewma',
        circuitBreaker: 'closed',
        endpoints: [
          {
            id: '10.0.0.1:8080',
            address: '10.0.0.1',
            port: 8080,
            health: 'passing',
            ejected: false,
            inFlight: 3,
            ewmaMs: 12.4,
            requests: 1200,
            failures: 2,
            connections: 4,
            zone: 'eu-1a',
          },
          {
            id: '10.0.0.2:8080',
            address: '10.0.0.2',
            port: 8080,
            health: 'passing',
            ejected: false,
            inFlight: 1,
            ewmaMs: 9.8,
            requests: 1180,
            failures: 0,
            connections: 3,
            zone: 'eu-1b',
          },
          {
            id: '10.0.0.3:8080',
            address: '10.0.0.3',
            port: 8080,
            health: 'warning',
            ejected: false,
            inFlight: 0,
            ewmaMs: 31.0,
            requests: 400,
            failures: 9,
            connections: 1,
            zone: 'eu-1c',
          },
        ],
      },
      {
        name: 'inventory',
        source: 'static',
        version: 1,
        resolved: true,
        stale: true,
        staleForMs: 45_000,
        policy: 'round_robin',
        endpoints: [
          {
            id: '10.0.1.1:9000',
            address: '10.0.1.1',
            port: 9000,
            health: 'passing',
            ejected: false,
            inFlight: 0,
            requests: 80,
            failures: 0,
          },
        ],
      },
      {
        // A routed service (a 90/10 canary): its calls go through its routing targets.
        name: 'web',
        source: 'file',
        version: 4,
        resolved: true,
        stale: false,
        policy: 'round_robin',
        circuitBreaker: 'closed',
        endpoints: [
          { id: '10.0.2.1:8080', address: '10.0.2.1', port: 8080, health: 'passing', ejected: false },
          { id: '10.0.2.2:8080', address: '10.0.2.2', port: 8080, health: 'passing', ejected: false },
        ],
        targets: [
          {
            name: 'v1.web.default.default.dc1',
            service: 'web',
            subset: 'v1',
            source: 'file',
            version: 4,
            resolved: true,
            stale: false,
            policy: 'round_robin',
            circuitBreaker: 'closed',
            endpoints: [
              {
                id: '10.0.2.1:8080',
                address: '10.0.2.1',
                port: 8080,
                health: 'passing',
                ejected: false,
                inFlight: 2,
                requests: 900,
                failures: 1,
                connections: 2,
              },
            ],
          },
          {
            name: 'v2.web.default.default.dc1',
            service: 'web',
            subset: 'v2',
            source: 'file',
            version: 4,
            resolved: true,
            stale: false,
            policy: 'round_robin',
            circuitBreaker: 'open',
            endpoints: [
              {
                id: '10.0.2.2:8080',
                address: '10.0.2.2',
                port: 8080,
                health: 'passing',
                ejected: true,
                inFlight: 0,
                requests: 100,
                failures: 40,
                connections: 0,
              },
            ],
          },
        ],
      },
    ],
  };
}

/** Mark an endpoint ejected, as the mesh's provider would after an `eject` event. */
export function eject(f: Fixture, service: string, id: string): void {
  f.services = f.services.map((s) =>
    s.name !== service
      ? s
      : { ...s, endpoints: s.endpoints.map((e) => (e.id === id ? { ...e, ejected: true } : e)) },
  );
  f.events = [
    ...f.events,
    {
      time: '2026-01-01T00:00:05.000Z',
      type: 'eject',
      service,
      detail: `eject ${id} (consecutive_5xx, 30000 ms)`,
    },
  ];
}

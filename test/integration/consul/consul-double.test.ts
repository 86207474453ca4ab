import { afterAll, beforeAll, describe } from 'vitest';
import { type ConsulDouble, startConsulDouble } from '../../consul-double/server.js';
import { consulCases } from './consul.cases.js';

describe('Consul discovery against the Consul double', () => {
  let double: ConsulDouble | undefined;
  beforeAll(async () => {
    double = await startConsulDouble();
  });
  afterAll(async () => {
    await double?.close();
  });
  consulCases(() => {
    if (!double) throw new Error('double not started');
    return { kind: 'double', address: double.address, double };
  });
});

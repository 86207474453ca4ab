/**
 * Test helpers for services that use the mesh: virtual time, seeded randomness, scripted
 * upstreams and call records, so policies can be unit-tested with no sockets and no real time.
 */
export {
  flushPromises,
  recordingObserver,
  type ScriptedCall,
  type ScriptedUpstream,
  type ScriptStep,
  scriptedUpstream,
  seededRandom,
  testContext,
  testEndpoints,
  VirtualClock,
} from '@proxyless/core/testing';

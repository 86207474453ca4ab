/** The types of `opossum-part.cjs`: opossum's `CircuitBreaker` class, loaded at the first call. */
import type CircuitBreaker from 'opossum';

declare const opossum: () => typeof CircuitBreaker;
export = opossum;

/** Re-exports for callers that only select patches (the compiler), keeping imports narrow. */
export { selects as selectsPatch } from './apply';
export type { EnvoyPatch } from './schema';

/**
 * Names the identity stage shares with translation and with workloads. They are API: Envoy
 * listeners and clusters refer to the SDS secrets by these names, proxyless gRPC TLS contexts
 * refer to the certificate provider instances by them, and workload bootstraps and the agent's
 * output folder use the file names. They change only with a version note.
 *
 * | what | name |
 * |---|---|
 * | SDS secret with the workload certificate chain and key (Envoy) | `weft-identity` |
 * | SDS secret with the trust bundle (Envoy) | `weft-ca` |
 * | certificate provider instance with the workload certificate and key (gRPC) | `weft-identity` |
 * | certificate provider instance with the trust bundle (gRPC) | `weft-ca` |
 * | agent output: certificate chain, private key, trust bundle | `cert.pem`, `key.pem`, `ca.pem` |
 */

/** SDS secret (Envoy) and certificate provider instance (gRPC) holding the workload certificate and key. */
export const IDENTITY_SECRET = 'weft-identity';

/** SDS secret (Envoy) and certificate provider instance (gRPC) holding the trust bundle. */
export const TRUST_SECRET = 'weft-ca';

/** File the agent writes the workload certificate chain (leaf first) to. */
export const CERT_FILE = 'cert.pem';

/** File the agent writes the workload private key to (mode 0600). */
export const KEY_FILE = 'key.pem';

/** File the agent writes the trust bundle (every root peers must accept now) to. */
export const CA_FILE = 'ca.pem';

/** Service account of the control plane itself; its SPIFFE ID is the xDS server's identity. */
export const CONTROL_PLANE_NAMESPACE = 'weft-system';

/** Service account name of the control plane. */
export const CONTROL_PLANE_SERVICE_ACCOUNT = 'weft';

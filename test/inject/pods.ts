/** The application pod the injector tests send: one container `web` with a port named `http`. */
import type { KubeObject } from '../../src/kube/client';

/** What varies between the tests' pods. */
export interface WebPodOptions {
  name?: string;
  namespace?: string;
  annotations?: Record<string, string>;
  /** Probes of the container (`livenessProbe`, `readinessProbe`, ...). */
  probes?: Record<string, unknown>;
  /** Extra pod spec fields. */
  spec?: Record<string, unknown>;
}

/** A pod of the web application. */
export function webPod(o: WebPodOptions = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: o.name ?? 'web',
      namespace: o.namespace ?? 'shop',
      labels: { app: 'web' },
      ...(o.annotations ? { annotations: o.annotations } : {}),
    },
    spec: {
      serviceAccountName: 'web',
      containers: [
        { name: 'web', image: 'example/web:1', ports: [{ name: 'http', containerPort: 8080 }], ...o.probes },
      ],
      ...o.spec,
    },
  };
}

/** YAML rendering of the CRDs, shared by `weft install --crds` and the `crds/` folder. */
import { stringify } from 'yaml';
import { allCrds, type Schema } from './definitions';

const HEADER = '# Generated from src/crds/definitions.ts by `npm run gen:crds`; do not edit.\n';

/**
 * Folders (relative to the repository root) that `npm run gen:crds` fills with one file per CRD:
 * `crds/` for `kubectl apply -f crds/`, and the Helm chart's `crds/`, which Helm installs before
 * the chart's templates (and, unlike templates, never deletes on uninstall).
 */
export const CRD_FOLDERS = ['crds', 'deploy/helm/weft/crds'] as const;

/** File name of a CRD inside `crds/`: `<plural>.<group>.yaml`. */
export function crdFileName(crd: Schema): string {
  return `${(crd.metadata as { name: string }).name}.yaml`;
}

/** One CRD as a YAML document. */
export function crdYaml(crd: Schema): string {
  return HEADER + stringify(crd, { lineWidth: 0 });
}

/** Every CRD as one multi-document YAML stream. */
export function allCrdsYaml(): string {
  return allCrds()
    .map((c) => stringify(c, { lineWidth: 0 }))
    .join('---\n');
}

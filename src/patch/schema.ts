/**
 * The `EnvoyPatch` custom resource (`weft.dev/v1alpha1`), parsed with zod.
 *
 * ```yaml
 * apiVersion: weft.dev/v1alpha1
 * kind: EnvoyPatch
 * metadata: { name: retries, namespace: bookbuyer }
 * spec:
 *   priority: 10                      # lower applies first; then creation time, then name
 *   selector:                         # which proxies, within the patch's namespace
 *     matchLabels: { app: bookbuyer } # workload (pod template) labels
 *     serviceAccount: bookbuyer
 *     flavor: grpc                    # envoy | grpc; both when absent
 *   allowSecurityOverride: false      # required to change TLS contexts or RBAC filters
 *   patches:
 *     - target: { type: RouteConfiguration, name: "..." }          # by generated name
 *       merge: { ... }                                            # proto-aware merge
 *     - target: { type: Cluster, service: { name: bookstore, namespace: bookstore, port: 14001 } }
 *       jsonPatch: [ { op: add, path: /circuit_breakers, value: { ... } } ]
 *     - add: { type: Cluster, resource: { name: extra, ... } }      # a whole new resource
 *     - target: { type: Listener, name: "..." }
 *       insertHttpFilter: { before: envoy.filters.http.router, filter: { name: ..., typed_config: ... } }
 * ```
 * A patch in the mesh's own namespace (`weft-system`) without a selector applies mesh-wide.
 */
import { z } from 'zod';

/** Resource types a patch can address. */
export const PATCH_TYPES = ['Listener', 'RouteConfiguration', 'Cluster', 'ClusterLoadAssignment'] as const;

/** One of {@link PATCH_TYPES}. */
export type PatchResourceType = (typeof PATCH_TYPES)[number];

const jsonPatchOp = z.discriminatedUnion('op', [
  z.object({ op: z.literal('add'), path: z.string(), value: z.unknown() }),
  z.object({ op: z.literal('remove'), path: z.string() }),
  z.object({ op: z.literal('replace'), path: z.string(), value: z.unknown() }),
  z.object({ op: z.literal('move'), from: z.string(), path: z.string() }),
  z.object({ op: z.literal('copy'), from: z.string(), path: z.string() }),
  z.object({ op: z.literal('test'), path: z.string(), value: z.unknown() }),
]);

const target = z
  .object({
    type: z.enum(PATCH_TYPES),
    /** An exact generated resource name. */
    name: z.string().min(1).optional(),
    /** By meaning: the outbound resource of a service port (survives renames of generated names). */
    service: z
      .object({
        name: z.string().min(1),
        namespace: z.string().min(1).optional(),
        port: z.number().int().optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((t) => (t.name === undefined) !== (t.service === undefined), {
    message: 'set exactly one of target.name or target.service',
  });

const operation = z
  .object({
    target: target.optional(),
    jsonPatch: z.array(jsonPatchOp).min(1).optional(),
    merge: z.record(z.string(), z.unknown()).optional(),
    insertHttpFilter: z
      .object({
        before: z.string().min(1).optional(),
        after: z.string().min(1).optional(),
        filter: z.object({ name: z.string().min(1) }).passthrough(),
      })
      .strict()
      .refine((o) => (o.before === undefined) !== (o.after === undefined), {
        message: 'set exactly one of before or after',
      })
      .optional(),
    add: z
      .object({ type: z.enum(PATCH_TYPES), resource: z.record(z.string(), z.unknown()) })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((op, ctx) => {
    const kinds = [op.jsonPatch, op.merge, op.insertHttpFilter, op.add].filter((x) => x !== undefined).length;
    if (kinds !== 1)
      ctx.addIssue({
        code: 'custom',
        message: 'set exactly one of jsonPatch, merge, insertHttpFilter or add',
      });
    if (op.add === undefined && op.target === undefined)
      ctx.addIssue({ code: 'custom', message: 'target is required', path: ['target'] });
    if (op.add !== undefined && op.target !== undefined)
      ctx.addIssue({ code: 'custom', message: 'add takes no target', path: ['target'] });
    if (op.insertHttpFilter && op.target && op.target.type !== 'Listener') {
      ctx.addIssue({
        code: 'custom',
        message: 'insertHttpFilter needs a Listener target',
        path: ['target', 'type'],
      });
    }
  });

/** The EnvoyPatch spec. */
export const EnvoyPatchSpec = z
  .object({
    priority: z.number().int().default(0),
    selector: z
      .object({
        matchLabels: z.record(z.string(), z.string()).optional(),
        serviceAccount: z.string().min(1).optional(),
        flavor: z.enum(['envoy', 'grpc']).optional(),
      })
      .strict()
      .optional(),
    allowSecurityOverride: z.boolean().default(false),
    patches: z.array(operation).min(1),
  })
  .strict();

/** A parsed EnvoyPatch object. */
export const EnvoyPatchObject = z.object({
  apiVersion: z.literal('weft.dev/v1alpha1'),
  kind: z.literal('EnvoyPatch'),
  metadata: z.object({
    name: z.string().min(1),
    namespace: z.string().min(1).default('default'),
    generation: z.number().int().optional(),
    creationTimestamp: z.string().optional(),
    uid: z.string().optional(),
  }),
  spec: EnvoyPatchSpec,
});

/** A parsed EnvoyPatch. */
export type EnvoyPatch = z.infer<typeof EnvoyPatchObject>;
/** One operation of a patch. */
export type PatchOperation = EnvoyPatch['spec']['patches'][number];

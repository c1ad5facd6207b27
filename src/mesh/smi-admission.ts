/**
 * Admission of SMI objects (TrafficSplit, TrafficTarget, IdentityBinding, HTTPRouteGroup, TCPRoute,
 * UDPRoute) for the validating webhook (`/validate-smi`, the `weft-smi-validator` configuration).
 *
 * What it evaluates against: the current mesh. The objects the compiler last built its model from
 * are built again (`buildModel`) with the object under review in place of its stored version (same
 * kind, namespace and name, any apiVersion), and the conditions about that object are sorted in
 * two:
 *
 * - Findings about the object alone ({@link REFUSED_REASONS} at severity Error: schema, names,
 *   regexes, match names, cross-namespace names, subject and rule kinds, an IdentityBinding's
 *   schemes and SPIFFE IDs) refuse it, with the condition's own message, so `kubectl apply`
 *   prints what `weft check` or the object's status would have said. No other object can make
 *   such an object valid, so refusing loses nothing.
 * - Everything else (a backend Service or route that does not exist yet, a conflicting split,
 *   weights that are all zero, ...) depends on other objects or is only a hint: the object is
 *   admitted and the messages come back as admission warnings. Objects can thus be applied in any
 *   order and still converge.
 *
 * The cost is one model build over the current inputs, like one compile's model stage; parsing of
 * the stored objects is cached by the builder, so it is mostly the resolution of references.
 */

import { buildModel } from '../smi/build';
import { type ConditionReason, objectKey } from '../smi/conditions';
import type { Condition } from '../smi/model';
import { SMI_KINDS } from '../smi/normalize';

/**
 * Reasons that concern the object alone: at severity Error they refuse it. The others (missing
 * references, conflicts, hints, and a version Weft does not read, which is not the object's fault)
 * are warnings.
 */
export const REFUSED_REASONS: ReadonlySet<string> = new Set<ConditionReason>([
  'InvalidObject',
  'InvalidName',
  'InvalidSpec',
  'InvalidMatch',
  'DuplicateMatchName',
  'CrossNamespaceService',
  'DestinationNamespaceMismatch',
  'UnsupportedSubjectKind',
  'UnsupportedRuleKind',
  'IdentityBindingNoScheme',
  'IdentityBindingConflictingSchemes',
  'InvalidSpiffeId',
  'SpiffeIdOutsideNamespace',
]);

/** The webhook's answer. */
export interface SmiAdmission {
  readonly allowed: boolean;
  /** The refusing conditions' messages, when refused. */
  readonly message?: string;
  /** The object's other conditions' messages; kubectl prints them. */
  readonly warnings?: readonly string[];
}

interface Named {
  kind?: unknown;
  metadata?: { name?: unknown; namespace?: unknown };
}

function identity(o: unknown): string | undefined {
  if (typeof o !== 'object' || o === null) return undefined;
  const n = o as Named;
  if (typeof n.kind !== 'string' || typeof n.metadata?.name !== 'string') return undefined;
  const ns = typeof n.metadata.namespace === 'string' ? n.metadata.namespace : '';
  return objectKey(n.kind, ns, n.metadata.name);
}

/**
 * Checks one SMI object against `inputs` (the current mesh's objects; see the module comment).
 * `object` must carry its namespace. Objects of other kinds than {@link SMI_KINDS} are admitted without
 * a look.
 */
export function admitSmiObject(inputs: readonly unknown[], object: unknown): SmiAdmission {
  const id = identity(object);
  const kind = (object as Named | null)?.kind;
  if (id === undefined || typeof kind !== 'string' || !SMI_KINDS.has(kind)) return { allowed: true };
  const others = inputs.filter((o) => identity(o) !== id);
  const mine: Condition[] = buildModel([...others, object]).conditions.filter((c) => c.object === id);
  const refusing = mine.filter((c) => c.severity === 'Error' && REFUSED_REASONS.has(c.reason));
  if (refusing.length > 0) {
    return { allowed: false, message: refusing.map((c) => c.message).join('; ') };
  }
  const warnings = mine.map((c) => c.message);
  return warnings.length > 0 ? { allowed: true, warnings } : { allowed: true };
}

/** Checks one SMI object against `compiler`'s current inputs. */
export function admitSmi(
  compiler: { readonly currentInputs: readonly unknown[] },
  object: unknown,
): SmiAdmission {
  return admitSmiObject(compiler.currentInputs, object);
}

/**
 * Status on Weft's own kinds is written only when it changes: what the API server hands back has
 * its keys in another order than Weft wrote them, and that alone must not cause a write.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeClient, KubeObject } from '../../src/kube/client';
import { StatusWriter, sameStatus, statusFor, type WeftStatus } from '../../src/kube/status';
import type { Condition } from '../../src/smi/model';

/** Re-creates a value with every object's keys in sorted order, as the API server returns JSON. */
function sortedKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map(sortedKeys) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) out[k] = sortedKeys((value as Record<string, unknown>)[k]);
    return out as T;
  }
  return value;
}

const PATCH: KubeObject = {
  apiVersion: 'weft.dev/v1alpha1',
  kind: 'EnvoyPatch',
  metadata: { name: 'retries', namespace: 'shop', generation: 3 },
};
const FAILED: Condition = {
  object: 'EnvoyPatch/shop/retries',
  type: 'Applied',
  status: 'False',
  severity: 'Error',
  reason: 'InvalidPatch',
  message: 'patches[0] does not apply',
};
const T0 = new Date('2026-01-01T00:00:00Z');
const T1 = new Date('2026-01-01T00:05:00Z');

/** A client that records PATCHes and answers them like nothing else. */
function recordingClient(): { client: KubeClient; patches: string[] } {
  const patches: string[] = [];
  const client = {
    request: async (method: string, path: string): Promise<KubeObject> => {
      patches.push(`${method} ${path}`);
      return {};
    },
  } as unknown as KubeClient;
  return { client, patches };
}

describe('status writes', () => {
  it('compares statuses whatever their key order, and without transition times', () => {
    const written = statusFor(PATCH, [FAILED], T0);
    const stored = sortedKeys(written);
    assert.notEqual(JSON.stringify(stored), JSON.stringify(written), 'the key order does differ');
    assert.ok(sameStatus(stored, written));
    const later = statusFor({ ...PATCH, status: stored } as KubeObject, [FAILED], T1);
    assert.ok(sameStatus(stored, later));
    const otherTime: WeftStatus = {
      ...written,
      conditions: written.conditions.map((c) => ({ ...c, lastTransitionTime: T1.toISOString() })),
    };
    assert.ok(sameStatus(stored, otherTime), 'a transition time alone is no change');
  });

  it('sees a real change: message, status, generation, a condition more or less', () => {
    const stored = sortedKeys(statusFor(PATCH, [FAILED], T0));
    assert.ok(!sameStatus(stored, statusFor(PATCH, [{ ...FAILED, message: 'other' }], T0)));
    assert.ok(!sameStatus(stored, statusFor(PATCH, [], T0)));
    assert.ok(
      !sameStatus(
        stored,
        statusFor({ ...PATCH, metadata: { ...PATCH.metadata, generation: 4 } }, [FAILED], T0),
      ),
    );
    assert.ok(!sameStatus(undefined, statusFor(PATCH, [FAILED], T0)));
  });

  it('does not PATCH again a status the API server returned with its keys reordered', async () => {
    const { client, patches } = recordingClient();
    const writer = new StatusWriter(client);
    await writer.publish([PATCH], [FAILED], T0);
    assert.equal(patches.length, 1);
    const stored = { ...PATCH, status: sortedKeys(statusFor(PATCH, [FAILED], T0)) } as KubeObject;
    await writer.publish([stored], [FAILED], T1);
    await writer.publish([stored], [FAILED], T1);
    assert.equal(patches.length, 1, 'no write while nothing changed');
    assert.equal(writer.writes, 1);
  });
});

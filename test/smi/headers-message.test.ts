import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildModel, parseYamlObjects } from '../../src/smi';

describe('HTTPRouteGroup headers that are not strings', () => {
  it('names the header whose value YAML read as a number, and says to quote it', () => {
    const { objects } = parseYamlObjects(
      `apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: { name: g, namespace: a }
spec:
  matches:
    - { name: m, headers: [{ x-beta: 1 }] }
`,
      'g.yaml',
    );
    const c = buildModel(objects).conditions.find((x) => x.object === 'HTTPRouteGroup/a/g');
    assert.equal(c?.reason, 'InvalidSpec');
    assert.match(
      c?.message ?? '',
      /headers must map each header name to a regex string, but "x-beta" is 1; quote/,
    );
  });
});

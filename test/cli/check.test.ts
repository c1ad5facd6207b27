/**
 * `weft check`'s pieces that need no cluster: proxy findings from a running Weft's view, when
 * `--wait` may stop, and the text output (a fix under each problem, the totals last).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findingsText, hasProblems } from '../../src/cli/check';
import { type Finding, installSettled, proxyFindings } from '../../src/kube/check';

describe('weft check findings', () => {
  it('a NACK is an error naming the proxy and its words, a proxy behind a warning', () => {
    const f = proxyFindings(
      [
        { proxy: 'shop/buyer-1', inSync: true },
        {
          proxy: 'shop/seller-1',
          inSync: false,
          lastNack: { type: 'lds', version: 'abc', message: 'duplicate listener' },
        },
        { proxy: 'shop/seller-2', inSync: false },
      ],
      'pod weft-system/weft-0',
    );
    assert.deepEqual(
      f.map((x) => [x.level, x.object]),
      [
        ['error', 'Proxy/shop/seller-1'],
        ['warning', 'Proxy/shop/seller-2'],
      ],
    );
    assert.match(f[0]!.message, /rejected \(NACKed\) lds version abc: duplicate listener/);
    assert.match(f[0]!.fix ?? '', /weft proxy config shop\/seller-1/);
    const fine = proxyFindings([{ proxy: 'a/b', inSync: true }], 'here');
    assert.deepEqual(
      fine.map((x) => x.level),
      ['ok'],
    );
    assert.match(fine[0]!.message, /1 connected proxy, all in sync \(here\)/);
  });

  it('--wait stops only with the Deployment ready and no errors; skipped and warnings do not hold it', () => {
    const ready: Finding = { level: 'ok', check: 'deployment', message: 'Deployment weft-system/weft: 2/2' };
    const skipped: Finding = { level: 'skipped', check: 'unmeshed', message: 'not checked' };
    const warning: Finding = { level: 'warning', check: 'namespaces', message: 'no mesh namespace' };
    const error: Finding = { level: 'error', check: 'webhook', message: 'no caBundle' };
    assert.equal(installSettled([ready, skipped, warning]), true);
    assert.equal(installSettled([ready, error]), false);
    assert.equal(installSettled([{ ...ready, level: 'warning' }]), false);
    assert.equal(hasProblems([ready, skipped]), false);
    assert.equal(hasProblems([ready, warning]), true);
  });

  it('prints the fix under a problem only, and the totals', () => {
    const text = findingsText([
      { level: 'ok', check: 'api-server', message: 'answers', fix: 'never shown' },
      { level: 'error', check: 'webhook', message: 'no caBundle', fix: 'get Weft running' },
    ]);
    assert.equal(
      text,
      'ok       api-server  answers\nERROR    webhook     no caBundle\n                     fix: get Weft running\n1 error, 0 warnings.\n',
    );
  });
});

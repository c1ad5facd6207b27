import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { re2Problem } from '../../src/smi/regex';

describe('re2Problem (real RE2 through re2-wasm)', () => {
  it('accepts what RE2 accepts, including syntax JavaScript reads differently', () => {
    const valid = [
      '/api',
      '/api/.*',
      '^/v[0-9]+/(users|orders)$',
      '.*Firefox.*',
      '(?i)/Admin',
      '(?P<id>[0-9]+)',
      '[[:alpha:]][[:^digit:]]',
      '\\pL+\\p{Greek}',
      '\\Q(.*)\\E',
      'a{1000}',
      '\\A/api\\z',
      'é+',
    ];
    for (const re of valid) assert.equal(re2Problem(re), null, re);
  });

  it('names the problem of what RE2 rejects, including what JavaScript would accept', () => {
    const cases: [string, RegExp][] = [
      ['(', /missing \)/],
      ['a)', /unexpected \)/],
      ['a**', /bad repetition operator/],
      ['[z-a]', /invalid character class range/],
      ['(?=x)', /invalid perl operator/],
      ['(?<!x)y', /invalid perl operator|invalid named capture group/],
      ['(a)\\1', /invalid escape sequence/],
      ['a{1001}', /invalid repetition size/],
      ['/api\\', /trailing \\/],
    ];
    for (const [re, want] of cases) {
      const got = re2Problem(re);
      assert.ok(got !== null, `${re} should be rejected`);
      assert.match(got, want, re);
      assert.ok(!got.startsWith('Invalid regular expression'), `${re}: only the reason is kept (${got})`);
    }
  });
});

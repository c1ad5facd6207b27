import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Batcher } from '../../src/kube/batch';

const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('Batcher', () => {
  it('turns a flood of 1,000 changes into one run', async () => {
    let runs = 0;
    const b = new Batcher(10, 1000, () => {
      runs++;
    });
    for (let i = 0; i < 1000; i++) b.trigger();
    await settle(50);
    assert.equal(runs, 1);
  });

  it('runs again for a change that arrives during a run', async () => {
    let runs = 0;
    let release: () => void = () => undefined;
    const b = new Batcher(5, 100, async () => {
      runs++;
      if (runs === 1) {
        await new Promise<void>((r) => {
          release = r;
        });
      }
    });
    b.trigger();
    await settle(20);
    assert.equal(runs, 1);
    b.trigger();
    release();
    await settle(30);
    assert.equal(runs, 2);
  });
});

/** Golden files of the injector: `UPDATE_GOLDEN=1` rewrites them; review their diffs like code. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const DIR = join(__dirname, '..', '..', '..', 'test', 'inject', 'golden');

/** Compares `text` with the golden file `name` (rewrites it under UPDATE_GOLDEN=1). */
export function golden(name: string, text: string): void {
  const file = join(DIR, name);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, text);
  assert.ok(existsSync(file), `test/inject/golden/${name} is missing: run with UPDATE_GOLDEN=1`);
  assert.equal(
    text,
    readFileSync(file, 'utf8'),
    `${name} differs from its golden file (UPDATE_GOLDEN=1 rewrites it)`,
  );
}

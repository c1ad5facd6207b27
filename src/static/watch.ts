/**
 * Watches a file and calls back with its text after it settles. Editors often replace a file
 * (write a temp file, rename), so the folder is watched, not the file, and a burst of events
 * yields one reload after a quiet window.
 */
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

/** Stops watching. */
export type StopWatching = () => void;

/** Calls `onChange(text)` now and after every settled change of `path`. */
export function watchFile(
  path: string,
  onChange: (text: string) => void,
  onError: (err: Error) => void,
  quietMs = 100,
): StopWatching {
  let timer: NodeJS.Timeout | undefined;
  let last: string | undefined;
  const load = (): void => {
    readFile(path, 'utf8').then(
      (text) => {
        if (text === last) return;
        last = text;
        onChange(text);
      },
      (err: Error) => onError(err),
    );
  };
  const watcher: FSWatcher = watch(dirname(path), (_event, name) => {
    if (name !== null && name !== basename(path)) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(load, quietMs);
  });
  load();
  return () => {
    if (timer) clearTimeout(timer);
    watcher.close();
  };
}

import { watch, type FSWatcher } from 'node:fs';

/**
 * Calls `onChange(fileName)` when a file in the state directory changes. Uses inotify (fs.watch),
 * not polling; bursts (write + rename) collapse into one call per file after `debounceMs`.
 */
export function watchStateDir(
  dir: string,
  onChange: (fileName: string) => void,
  debounceMs = 25,
): { close(): void } {
  const pending = new Map<string, NodeJS.Timeout>();
  const watcher: FSWatcher = watch(dir, { persistent: false }, (_event, name) => {
    if (name === null || name.endsWith('.tmp')) return;
    const file = name.toString();
    clearTimeout(pending.get(file));
    const timer = setTimeout(() => {
      pending.delete(file);
      onChange(file);
    }, debounceMs);
    timer.unref();
    pending.set(file, timer);
  });
  watcher.on('error', () => undefined);
  return {
    close() {
      for (const timer of pending.values()) clearTimeout(timer);
      watcher.close();
    },
  };
}

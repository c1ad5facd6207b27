/**
 * The host's side of a pod app (pod-app.ts): sends it calls to make from inside its pod over its
 * stdin and reads the outcomes from its stdout.
 */
import { createInterface } from 'node:readline';
import type { AppHello, AppRequest, AppResponseLine, CallOutcome } from './app-protocol';
import type { PodProcess } from './pod';

/** A pod app the host talks to. */
export class PodApp {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (r: CallOutcome[]) => void; reject: (e: Error) => void }
  >();
  private closed: Error | undefined;

  private constructor(
    private readonly p: PodProcess,
    /** What the app said when it was ready. */
    readonly hello: AppHello,
    lines: ReturnType<typeof createInterface>,
  ) {
    lines.on('line', (line) => {
      let r: AppResponseLine;
      try {
        r = JSON.parse(line) as AppResponseLine;
      } catch {
        return;
      }
      const w = this.pending.get(r.id);
      if (!w) return;
      this.pending.delete(r.id);
      if ('error' in r) w.reject(new Error(`pod ${hello.pod}: ${r.error}`));
      else w.resolve(r.result);
    });
    void p.exited.then((code) => {
      this.closed = new Error(`pod ${hello.pod}: the app exited (${code}); see ${p.logFile}`);
      for (const w of this.pending.values()) w.reject(this.closed);
      this.pending.clear();
    });
  }

  /** Waits for the app (a container with `stdin: true`) to say it is ready. */
  static attach(p: PodProcess, timeoutMs = 60_000): Promise<PodApp> {
    const out = p.child.stdout;
    if (!out || !p.child.stdin)
      throw new Error(`container ${p.container} has no piped stdin/stdout (set stdin: true)`);
    const lines = createInterface({ input: out });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`container ${p.container}: not ready within ${timeoutMs} ms; see ${p.logFile}`)),
        timeoutMs,
      );
      const first = (line: string): void => {
        let hello: AppHello;
        try {
          hello = JSON.parse(line) as AppHello;
        } catch {
          return;
        }
        if (!hello.ready) return;
        clearTimeout(timer);
        lines.off('line', first);
        resolve(new PodApp(p, hello, lines));
      };
      lines.on('line', first);
      void p.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`container ${p.container} exited (${code}) before it was ready; see ${p.logFile}`));
      });
    });
  }

  /** Makes the calls of `r` from inside the pod; resolves with one outcome per call. */
  call(r: AppRequest): Promise<CallOutcome[]> {
    if (this.closed) return Promise.reject(this.closed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.p.child.stdin!.write(`${JSON.stringify({ ...r, id })}\n`);
    });
  }
}

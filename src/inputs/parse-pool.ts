/**
 * Parses big manifest files on a worker thread, so that `weft serve --config-dir` keeps answering
 * xDS and admin requests while a large file (a 10,000-match HTTPRouteGroup takes about a second in
 * the `yaml` library) is parsed. The result is the one {@link parseYamlObjects} gives on the main
 * thread: the worker runs that very function and its result is plain data, copied back by
 * structured clone. Small files are parsed inline: a round trip to the thread costs more than
 * they do, and they cannot stall the loop noticeably.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { type Logger, logger } from '../log';
import { type ParsedYaml, parseYamlObjects } from '../smi/load';

const log: Logger = logger('folder');

/** A file to parse, as sent to the worker. */
export interface ParseRequest {
  readonly id: number;
  readonly text: string;
  readonly source: string;
}

/** The worker's answer: the parse, or why it could not produce one. */
export type ParseReply =
  | { readonly id: number; readonly result: ParsedYaml; readonly error?: undefined }
  | { readonly id: number; readonly error: string; readonly result?: undefined };

/** Files at least this long (characters) go to the worker: below it, parsing takes tens of ms at most. */
export const WORKER_MIN_CHARS = 64 * 1024;

/**
 * One parsing thread, started on first use. If the thread cannot start or dies, files are parsed
 * on the main thread (slower to answer meanwhile, but the same result): parsing must never be
 * what stops Weft serving.
 */
export class ParseWorker {
  private worker: Worker | undefined;
  private failed = false;
  private nextId = 1;
  private readonly pending = new Map<number, { req: ParseRequest; done: (r: ParsedYaml) => void }>();
  /** How many files the worker thread parsed (tests check that the thread was used). */
  parsedOffThread = 0;

  /** @param minChars Files shorter than this are parsed inline. */
  constructor(private readonly minChars = WORKER_MIN_CHARS) {}

  /** Parses `text` like {@link parseYamlObjects}, on the worker thread when it is big. */
  parse(text: string, source: string): Promise<ParsedYaml> {
    if (text.length < this.minChars) return Promise.resolve(parseYamlObjects(text, source));
    const worker = this.thread();
    if (!worker) return Promise.resolve(parseYamlObjects(text, source));
    const req: ParseRequest = { id: this.nextId++, text, source };
    return new Promise((done) => {
      this.pending.set(req.id, { req, done });
      // While a parse is outstanding the thread must keep the process alive to answer it.
      worker.ref();
      worker.postMessage(req);
    });
  }

  /** Stops the thread; outstanding parses finish on the main thread. */
  stop(): void {
    const w = this.worker;
    this.worker = undefined;
    this.failed = true;
    if (w) void w.terminate();
    this.drainInline();
  }

  private thread(): Worker | undefined {
    if (this.worker || this.failed) return this.worker;
    // The compiled worker sits next to this file; run from TypeScript sources it is absent.
    const file = join(__dirname, 'parse-worker.js');
    if (!existsSync(file)) {
      this.failed = true;
      return undefined;
    }
    try {
      const w = new Worker(file);
      w.on('message', (reply: ParseReply) => this.answer(reply));
      w.on('error', (err) => this.lost(err.message));
      w.on('exit', (code) => {
        if (this.worker === w) this.lost(`exited with code ${code}`);
      });
      w.unref();
      this.worker = w;
      return w;
    } catch (err) {
      this.lost(err instanceof Error ? err.message : String(err));
      return undefined;
    }
  }

  private answer(reply: ParseReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker?.unref();
    if (reply.result) {
      this.parsedOffThread++;
      p.done(reply.result);
    } else {
      p.done(parseYamlObjects(p.req.text, p.req.source));
    }
  }

  private lost(why: string): void {
    if (!this.failed)
      log.warn('the YAML parsing thread stopped; parsing on the main thread from now on', { error: why });
    this.failed = true;
    const w = this.worker;
    this.worker = undefined;
    if (w) void w.terminate();
    this.drainInline();
  }

  private drainInline(): void {
    const left = [...this.pending.values()];
    this.pending.clear();
    for (const p of left) p.done(parseYamlObjects(p.req.text, p.req.source));
  }
}

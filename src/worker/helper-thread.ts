/**
 * Weft's helper thread: the costly steps of a big change run here, so `weft serve` keeps answering
 * xDS and admin requests meanwhile. Two kinds of job come here: parsing a big manifest file (the
 * folder source) and encoding a big xDS resource (the compiler's sliced update: a RouteConfiguration
 * with 10,000 routes takes 0.2–0.6 s to convert and encode). Each result is the one the main thread
 * would compute: the thread runs the very same {@link runJob}. Small jobs run inline: a round trip
 * to the thread costs more than they do, and they cannot stall the loop noticeably.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { type Logger, logger } from '../log';
import type { ParsedYaml } from '../smi/load';
import type { ResourceTypeUrl } from '../xds/resource-types';
import { type Job, type JobResult, runJob } from './jobs';

const log: Logger = logger('helper-thread');

/** A job as sent to the thread. */
export interface JobRequest {
  readonly id: number;
  readonly job: Job;
}

/** The thread's answer: the result, or why it could not produce one. */
export type JobReply =
  | { readonly id: number; readonly result: ParsedYaml | Uint8Array; readonly error?: undefined }
  | { readonly id: number; readonly error: string; readonly result?: undefined };

/** Texts at least this long (characters) go to the thread: below it, a job takes tens of ms at most. */
export const WORKER_MIN_CHARS = 64 * 1024;

interface Pending {
  readonly job: Job;
  readonly done: (r: ParsedYaml | Uint8Array) => void;
}

/**
 * One helper thread, started on first use. If the thread cannot start or dies, jobs run on the main
 * thread (slower to answer meanwhile, but the same result): the helper must never be what stops
 * Weft serving.
 */
export class HelperThread {
  private worker: Worker | undefined;
  private failed = false;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** How many jobs the thread did so far (tests check that it was used). */
  doneOffThread = 0;

  /** @param minChars Texts shorter than this are handled inline. */
  constructor(private readonly minChars = WORKER_MIN_CHARS) {}

  /** Parses `text` like {@link parseYamlObjects}, on the thread when it is big. */
  parse(text: string, source: string): Promise<ParsedYaml> {
    return this.run({ kind: 'parse', text, source });
  }

  /** Encodes one resource from its JSON text like {@link encodeEnvoyResource}, on the thread when it is big. */
  encode(typeUrl: ResourceTypeUrl, text: string): Promise<Uint8Array> {
    return this.run({ kind: 'encode', typeUrl, text });
  }

  private run<J extends Job>(job: J): Promise<JobResult<J>> {
    const worker = job.text.length < this.minChars ? undefined : this.thread();
    if (!worker) return Promise.resolve(runJob(job));
    const id = this.nextId++;
    return new Promise((done) => {
      this.pending.set(id, { job, done: done as Pending['done'] });
      // While a job is outstanding the thread must keep the process alive to answer it.
      worker.ref();
      worker.postMessage({ id, job } satisfies JobRequest);
    });
  }

  /** Stops the thread; outstanding jobs finish on the main thread. */
  stop(): void {
    const w = this.worker;
    this.worker = undefined;
    this.failed = true;
    if (w) void w.terminate();
    this.drainInline();
  }

  private thread(): Worker | undefined {
    if (this.worker || this.failed) return this.worker;
    // The compiled thread body sits next to this file; run from TypeScript sources it is absent.
    const file = join(__dirname, 'helper-main.js');
    if (!existsSync(file)) {
      this.failed = true;
      return undefined;
    }
    try {
      const w = new Worker(file);
      w.on('message', (reply: JobReply) => this.answer(reply));
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

  private answer(reply: JobReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker?.unref();
    if (reply.result) {
      this.doneOffThread++;
      p.done(reply.result);
    } else {
      p.done(runJob(p.job));
    }
  }

  private lost(why: string): void {
    if (!this.failed)
      log.warn('the helper thread stopped; its jobs run on the main thread from now on', { error: why });
    this.failed = true;
    const w = this.worker;
    this.worker = undefined;
    if (w) void w.terminate();
    this.drainInline();
  }

  private drainInline(): void {
    const left = [...this.pending.values()];
    this.pending.clear();
    for (const p of left) p.done(runJob(p.job));
  }
}

/**
 * The body of Weft's helper thread ({@link HelperThread}): it does each job it is sent with the
 * same function the main thread would use and posts back the result, which structured clone copies
 * (plain data for a parse, bytes for an encoding).
 */
import { parentPort } from 'node:worker_threads';
import type { JobReply, JobRequest } from './helper-thread';
import { runJob } from './jobs';

parentPort?.on('message', (req: JobRequest) => {
  let reply: JobReply;
  try {
    reply = { id: req.id, result: runJob(req.job) };
  } catch (e) {
    // A parse reports bad YAML as conditions and the compiler encodes only validated resources:
    // a throw here is a bug or exhaustion, and the main thread then does the job itself so the
    // cause surfaces where it is logged.
    reply = { id: req.id, error: e instanceof Error ? e.message : String(e) };
  }
  parentPort?.postMessage(reply);
});

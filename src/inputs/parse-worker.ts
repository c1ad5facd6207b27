/**
 * The body of the YAML parsing thread used by {@link ParseWorker}: it parses what it is sent with
 * the same function the main thread would use and posts back the plain result, which structured
 * clone copies (objects, arrays, strings, numbers, booleans and null are all it holds).
 */
import { parentPort } from 'node:worker_threads';
import { parseYamlObjects } from '../smi/load';
import type { ParseReply, ParseRequest } from './parse-pool';

parentPort?.on('message', (req: ParseRequest) => {
  let reply: ParseReply;
  try {
    reply = { id: req.id, result: parseYamlObjects(req.text, req.source) };
  } catch (e) {
    // parseYamlObjects reports bad YAML as conditions; a throw here is a bug or exhaustion, and
    // the main thread then parses the file itself so the cause surfaces where it is logged.
    reply = { id: req.id, error: e instanceof Error ? e.message : String(e) };
  }
  parentPort?.postMessage(reply);
});

/**
 * The work Weft hands to its helper thread, and how each job is done. The thread and the main
 * thread's fallback run the same {@link runJob}, so a job's result never depends on where it ran.
 */
import { type ParsedYaml, parseYamlObjects } from '../smi/load';
import type { JsonObject } from '../xds/cache/snapshot';
import { encodeEnvoyResource } from '../xds/encoder';
import type { ResourceTypeUrl } from '../xds/resource-types';

/** Parse a manifest file's text, as {@link parseYamlObjects}. */
export interface ParseJob {
  readonly kind: 'parse';
  readonly text: string;
  readonly source: string;
}

/** Encode one xDS resource to protobuf from its JSON text, as {@link encodeEnvoyResource}. */
export interface EncodeJob {
  readonly kind: 'encode';
  readonly typeUrl: ResourceTypeUrl;
  /** The resource's JSON, as text: a string crosses to the thread far cheaper than an object. */
  readonly text: string;
}

/** A job for the helper thread. */
export type Job = ParseJob | EncodeJob;

/** What a job gives. */
export type JobResult<J extends Job> = J extends ParseJob ? ParsedYaml : Uint8Array;

/** Does one job. */
export function runJob<J extends Job>(job: J): JobResult<J> {
  const result =
    job.kind === 'parse'
      ? parseYamlObjects(job.text, job.source)
      : encodeEnvoyResource(job.typeUrl, JSON.parse(job.text) as JsonObject);
  return result as JobResult<J>;
}

/**
 * What every `weft serve` source (a folder, a Kubernetes API server) does around the compiler:
 * metrics for each compile, rolling back an EnvoyPatch a proxy NACKed, and re-grouping proxies
 * after the inputs change.
 */
import type { Metrics } from '../admin/metrics';
import { type Logger, logger } from '../log';
import type { NackRecord } from '../xds/proxy-state';
import type { AdsServer } from '../xds/server/ads-server';
import type { MeshCompiler, UpdateResult } from './compiler';

const log: Logger = logger('compiler');

/** Records one compile in the metrics and the log; re-groups proxies waiting for their workload. */
export function afterCompile(metrics: Metrics, server: AdsServer, r: UpdateResult, inputs: number): void {
  const moved = server.regroup();
  metrics.observe('weft_compile_seconds', 'Time to compile inputs into snapshots.', r.ms / 1000);
  metrics.set('weft_inputs', 'Input objects read.', inputs);
  for (const severity of ['Error', 'Warning'] as const) {
    metrics.set(
      'weft_conditions',
      'Current conditions by severity.',
      r.conditions.filter((x) => x.severity === severity && !(x.status === 'True' && x.type !== 'Conflicted'))
        .length,
      { severity },
    );
  }
  metrics.inc('weft_compiles_total', 'Compiles run.');
  log.info('compiled', {
    objects: inputs,
    groups: r.groups,
    rekeyed: r.rekeyed,
    translated: r.translated,
    changed: r.changed,
    ...(moved > 0 ? { regrouped: moved } : {}),
    // Patched groups whose new config Envoy is still judging (they serve what they served).
    ...(r.judging ? { judging: r.judging } : {}),
    ms: Math.round(r.ms),
  });
}

/**
 * The resources a NACK is about. A state-of-the-world NACK covers every resource of the response,
 * but Envoy's error text names the ones it refused (`Error adding/updating listener(s) inbound:
 * ...`, `... in route route|80|shop/api`): when it names any of the sent resources, only those are
 * blamed, so a patch on one listener is not rolled back because another, unpatched one was refused.
 * A message naming none of them (a proxyless client's, say) blames every resource sent.
 */
export function rejectedResources(message: string, sent: readonly string[]): readonly string[] {
  const named = sent.filter((name) => {
    const re = new RegExp(`(?:^|[\\s'"(,])${name.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}(?:$|[\\s'",:)])`);
    return re.test(message);
  });
  return named.length > 0 ? named : sent;
}

/** A NACK on a resource an EnvoyPatch changed rolls that patch back for the proxy's group. */
export function rollBackPatchesOnNack(server: AdsServer, compiler: MeshCompiler): void {
  server.registry.on('nack', (n: NackRecord) => {
    for (const patch of compiler.patchesTouching(n.group, rejectedResources(n.message, n.resourceNames))) {
      log.warn('rolling back EnvoyPatch after NACK', { patch, group: n.group, error: n.message });
      compiler.rollBack(n.group, patch, { proxy: n.proxy, message: n.message });
    }
  });
}

/**
 * `weft topology [kind]`: who calls whom, from a running Weft's TrafficMetrics API: one query for
 * the resources of a kind, one for each resource's edges (as the SMI spec sketches `kubectl traffic
 * topology`), printed as text or as Graphviz DOT.
 */
import type { Command } from 'commander';
import type { TrafficMetrics } from '../metrics/api';
import { topologyDot, topologyEdges, topologyText } from '../metrics/view';
import type { CommandRegistrar } from './index';
import { runCommand, UsageError } from './remote';
import { connectTraffic, kindOf, listPath, TOP_KINDS, type TrafficFlags, trafficFlags } from './top';

/** Registers `weft topology`. */
export const registerTopology: CommandRegistrar = (program: Command, setExitCode) => {
  trafficFlags(
    program
      .command('topology')
      .argument('[kind]', `${TOP_KINDS.filter((k) => k !== 'trafficsplits').join(', ')}`, 'services')
      .description(
        'The graph of calls between resources over the window, measured by the calling sidecars:\n' +
          'an edge per caller and destination with its success rate, requests per second and p99.\n' +
          'A sidecar knows the Service it called, not the pod that answered: a destination is shown\n' +
          'in the kind asked for when all the pods behind its Service belong to one such resource,\n' +
          'else as the Service. -o dot prints Graphviz DOT (weft topology -o dot | dot -Tsvg > mesh.svg).',
      )
      .option('-o, --output <format>', 'text or dot', 'text'),
  ).action(async (typed: string, f: TrafficFlags) => {
    await runCommand('topology', setExitCode, async () => {
      const kind = kindOf(typed);
      if (kind === 'trafficsplits')
        throw new UsageError('a TrafficSplit has backends, not callers: use weft top trafficsplits');
      if (!['text', 'dot'].includes(f.output))
        throw new UsageError(`-o must be text or dot, not "${f.output}"`);
      const remote = await connectTraffic(f);
      try {
        const list = await remote.admin<{ items: TrafficMetrics[] }>(listPath(kind, f));
        const edges = await Promise.all(
          list.items.map((t) =>
            remote.admin<{ items: TrafficMetrics[] }>(
              listPath(kind, { ...f, in: t.resource.namespace ?? '', selector: undefined }, t.resource.name),
            ),
          ),
        );
        const graph = topologyEdges(edges, list.items[0]?.resource.kind ?? '');
        process.stdout.write(f.output === 'dot' ? topologyDot(graph) : topologyText(graph));
        return 0;
      } finally {
        await remote.close();
      }
    });
  });
};

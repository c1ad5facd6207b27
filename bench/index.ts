/**
 * `npm run bench`: prints Weft's performance figures. Figures depend on the machine; the README
 * notes the machine they were measured on. `--only xds` (or `compile`, `big-group`, `patch-judge`, `metrics`) runs one part;
 * `--quick` runs small sizes only.
 */
import { cpus, totalmem } from 'node:os';
import { setLogLevel } from '../src/log';
import { runBigGroupRender, runBigGroupServe } from './big-group';
import { runCompileBench } from './compile';
import { runRealSink, runSinkLoad } from './metrics';
import { runPatchJudgeBench } from './patch-judge';
import { runXdsScenario, type XdsFigures } from './xds';

function fmt(n: number, digits = 1): string {
  return n.toFixed(digits);
}

async function xds(quick: boolean): Promise<void> {
  const ks = quick ? [10, 100] : [10, 100, 1000];
  console.log('\n## xDS: 1,000 services (4,000 resources) in one group; one cluster changes per push');
  console.log(
    '| mode  | clients | initial sync ms | change→last ACK p50 ms | p99 ms | max ms | bytes/change | CPU s/change | encodes/change | RSS KB/client | heap KB/client |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const mode of ['delta', 'sotw'] as const) {
    for (const k of ks) {
      const f: XdsFigures = await runXdsScenario(k, mode);
      console.log(
        `| ${mode} | ${k} | ${f.syncMs} | ${fmt(f.p50Ms)} | ${fmt(f.p99Ms)} | ${fmt(f.maxMs)} | ${f.bytesPerChange} | ${fmt(f.cpuSecPerChange, 3)} | ${f.encodesPerChange} | ${fmt(f.rssPerClientKB)} | ${fmt(f.heapPerClientKB)} |`,
      );
    }
  }
}

function compile(): void {
  const f = runCompileBench(1000);
  console.log(
    '\n## Compile: 1,000 services x 10 routes, 5,000 endpoints, 1,000 workloads (one proxy each), 100 splits',
  );
  console.log(
    '| step | total ms | of which model (buildModel) ms | groups re-keyed | groups translated | snapshots changed | full build / this |',
  );
  console.log('|---|---|---|---|---|---|---|');
  console.log(
    `| full build (${f.objects} objects, ${f.groups} proxies) | ${fmt(f.fullMs, 0)} | ${fmt(f.fullModelMs, 0)} | ${f.groups} | ${f.groups} | ${f.groups} | 1 |`,
  );
  for (const [label, c] of [
    ['one TrafficSplit weight changes', f.split],
    ['one EndpointSlice changes', f.endpoint],
  ] as const) {
    console.log(
      `| ${label} (median, max) | ${fmt(c.medianMs)}, ${fmt(c.maxMs)} | ${fmt(c.modelMs)} | ${c.rekeyed} | ${c.translated} | ${c.changed} | ${fmt(f.fullMs / c.medianMs, 0)} |`,
    );
  }
}

async function bigGroup(): Promise<void> {
  const r = runBigGroupRender(10_000);
  const s = await runBigGroupServe(10_000);
  console.log('\n## One HTTPRouteGroup with 10,000 matches (used by a TrafficTarget and a split)');
  console.log('| step | ms | notes |');
  console.log('|---|---|---|');
  console.log(
    `| render (weft render: parse, model, both flavors, JSON) | ${fmt(r.renderMs, 0)} | heap +${fmt(r.heapMB, 0)} MB, ${fmt(r.outputMB, 1)} MB of JSON |`,
  );
  console.log(
    `| render, CPU time (all threads; estimates an idle machine's wall time) | ${fmt(r.renderCpuMs, 0)} | of it parsing the YAML: ${fmt(r.parseMs, 0)} ms wall |`,
  );
  console.log(
    `| parse the YAML: the fast path (js-yaml, as Weft reads it) / the \`yaml\` library alone | ${fmt(r.parseMs, 0)} / ${fmt(r.referenceParseMs, 0)} | same objects (test/smi/yaml-fast-path.test.ts) |`,
  );
  console.log(`| model and snapshots (compiler, no proxies) | ${fmt(r.modelMs, 0)} | |`);
  console.log(
    `| serve: parse the changed file on the helper thread (with the copy back) | ${fmt(s.workerParseMs, 0)} | inline: ${fmt(s.parseMs, 0)}; loop's worst delay meanwhile ${fmt(s.maxLoopDelayWorkerParseMs, 0)} ms |`,
  );
  console.log(
    `| serve: compile the change, 8 proxies connected: in one piece / in slices, big resources encoded on the helper thread | ${fmt(s.compileMs, 0)} / ${fmt(s.slicedCompileMs, 0)} | |`,
  );
  console.log(
    `| serve: event loop's worst delay over parse + compile: inline, one piece / helper thread, slices | ${fmt(s.maxLoopDelayInlineMs, 0)} / ${fmt(s.maxLoopDelayMs, 0)} | monitorEventLoopDelay |`,
  );
}

async function patchJudge(quick: boolean): Promise<void> {
  const f = await runPatchJudgeBench(quick ? 5 : 20);
  console.log('\n## EnvoyPatch judged by Envoy: the bookstore bookbuyer proxy, distinct patched sets');
  if (!f) {
    console.log('(skipped: no Envoy binary; see scripts/setup-envoy.sh)');
    return;
  }
  console.log('| how | accepted p50 ms | p99 ms | refused p50 ms | p99 ms |');
  console.log('|---|---|---|---|---|');
  console.log(
    `| envoy --mode validate, one at a time (refused: blame included, ${fmt(f.runsPerRefusal)} runs each) | ${fmt(f.acceptP50, 0)} | ${fmt(f.acceptP99, 0)} | ${fmt(f.refuseP50, 0)} | ${fmt(f.refuseP99, 0)} |`,
  );
  console.log(
    `| long-lived Envoy over delta ADS, set → ACK / NACK | ${fmt(f.xdsAckP50, 0)} | ${fmt(f.xdsAckP99, 0)} | ${fmt(f.xdsNackP50, 0)} | ${fmt(f.xdsNackP99, 0)} |`,
  );
  console.log(
    `Compile with nothing patched (300 proxies, one split change, median): ${fmt(f.compileWithout)} ms without a judge, ${fmt(f.compileWith)} ms with one; Envoy runs: ${f.compileEnvoyRuns}`,
  );
}

async function trafficMetrics(quick: boolean): Promise<void> {
  console.log("\n## Traffic metrics: the sidecars' stats sink");
  const real = await runRealSink();
  if (real)
    console.log(
      `Real sidecars (${real.proxies}, Envoy's default 5 s flush, ${fmt(real.seconds, 0)} s measured): ${fmt(real.bytesPerSecondPerProxy, 0)} B/s per proxy; messages ${fmt(real.meanMessageBytes, 0)} B on average, ${real.maxMessageBytes} B the largest`,
    );
  else
    console.log(
      '(real sidecars skipped: needs root, network namespaces and Envoy; see scripts/setup-envoy.sh)',
    );
  console.log(
    '| simulated proxies | message bytes | messages/s | Weft CPU (cores busy) | heap MB | RSS MB | series held |',
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const k of quick ? [100] : [100, 1000]) {
    const f = await runSinkLoad(k, real?.largest, quick ? 15 : 30);
    console.log(
      `| ${k} | ${f.messageBytes} | ${fmt(f.messagesPerSecond)} | ${fmt(f.cpuCoresBusy, 3)} | ${fmt(f.heapMB)} | ${fmt(f.rssMB)} | ${f.series} |`,
    );
  }
}

async function main(): Promise<void> {
  setLogLevel('warn');
  const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
  const quick = process.argv.includes('--quick');
  console.log(
    `# Weft benchmarks (node ${process.version}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB)`,
  );
  if (!only || only === 'compile') compile();
  if (!only || only === 'big-group') await bigGroup();
  if (!only || only === 'patch-judge') await patchJudge(quick);
  if (!only || only === 'xds') await xds(quick);
  if (!only || only === 'metrics') await trafficMetrics(quick);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

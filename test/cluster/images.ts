/**
 * The cluster tier's images, built without Docker or a registry: no base image can be pulled, so
 * each image starts from a root filesystem made here out of this machine's Debian files (each
 * program with the shared libraries `ldd` names), tarred as layers and written as a
 * `docker save` archive that `ctr images import` loads into containerd.
 *
 * What each image holds follows the Dockerfiles (checked by `dockerfileFinalStage` in the test):
 * - Weft's image (`Dockerfile`): node, the compiled `dist/src` and `dist/test/kube`, the
 *   production `node_modules`, `bin`, `package.json`, `deploy/manifests`, the pinned Envoy at
 *   /usr/local/bin/envoy, iptables for the capture init container, `weft` on PATH, uid 65532,
 *   entrypoint `weft`. The Dockerfile's stages compile and prune in a node:20-bookworm-slim
 *   image; here the tree already compiled by `npm run build` is copied and `npm ls --omit=dev`
 *   selects the production packages, which is what `npm ci --omit=dev` installs.
 * - The echo image (`e2e/cluster/Dockerfile`): the same tree, entrypoint
 *   `node dist/e2e/cluster/workload.js`.
 * - The sidecar image (`envoyproxy/envoy:v1.40.0` by default): the same pinned Envoy with `sh`,
 *   which the injected container's script needs.
 * - The pause image (containerd's sandbox_image): `hack/kube/cmd/pause`, static.
 * All but pause share the base layer (containerd stores it once).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';

/** Names of the images, as pods and Weft's flags refer to them. */
export interface ImageNames {
  weft: string;
  echo: string;
  sidecar: string;
  pause: string;
}

/** Weft's package version, which the chart's image tag defaults to. */
function packageVersion(root: string): string {
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The images' names: the chart's and the injector's defaults, so nothing has to be overridden. */
export function imageNames(root: string): ImageNames {
  return {
    weft: `ghcr.io/weft-mesh/weft:${packageVersion(root)}`,
    echo: 'weft-echo:dev',
    sidecar: 'envoyproxy/envoy:v1.40.0',
    pause: 'localhost/weft-pause:dev',
  };
}

/** What the Dockerfile's last stage says: its COPY destinations, ENTRYPOINT, USER and WORKDIR. */
export interface FinalStage {
  copies: string[];
  entrypoint: string[];
  user?: string;
  workdir?: string;
}

/** Reads the last stage of a Dockerfile (JSON-form ENTRYPOINT, one instruction a line). */
export function dockerfileFinalStage(text: string): FinalStage {
  const lines = text.split('\n');
  const from = lines.map((l) => /^FROM\s/i.test(l)).lastIndexOf(true);
  const stage: FinalStage = { copies: [], entrypoint: [] };
  for (const line of lines.slice(from + 1)) {
    const copy = /^COPY\s+(?:--from=\S+\s+)?(?:\S+\s+)+(\S+)$/i.exec(line);
    if (copy) stage.copies.push(copy[1]!);
    const entry = /^ENTRYPOINT\s+(\[.*\])$/i.exec(line);
    if (entry) stage.entrypoint = JSON.parse(entry[1]!) as string[];
    const user = /^USER\s+(\S+)$/i.exec(line);
    if (user) stage.user = user[1]!;
    const wd = /^WORKDIR\s+(\S+)$/i.exec(line);
    if (wd) stage.workdir = wd[1]!;
  }
  return stage;
}

/**
 * Copies `file` (following links) to `at` (the same path by default) under `root`, with the
 * shared libraries it loads, each at the path the loader looks for it.
 */
function addProgram(root: string, file: string, seen: Set<string>, at = file): void {
  if (seen.has(at)) return;
  seen.add(at);
  const dest = join(root, at);
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(realpathSync(file), dest);
  chmodSync(dest, 0o755);
  let out = '';
  try {
    out = execFileSync('ldd', [file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return; // static: nothing more to copy
  }
  for (const m of out.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)) addProgram(root, m[1]!, seen);
}

/** A symbolic link in the image (`target` as the image sees it). */
function link(root: string, path: string, target: string): void {
  const p = join(root, path);
  mkdirSync(dirname(p), { recursive: true });
  symlinkSync(target, p);
}

/** Where a command is on this machine (PATH and the sbin folders). */
function hostCommand(name: string): string {
  for (const dir of ['/usr/local/bin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/sbin', '/sbin']) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`${name} is not installed on this machine; the cluster tier's images copy it`);
}

/** The base layer: sh, the few commands the injected containers run, node, Envoy, iptables. */
function baseTree(root: string, envoy: string): void {
  const seen = new Set<string>();
  // Debian's merged /usr: /bin, /lib, /lib64 and /sbin are links into /usr.
  for (const d of ['bin', 'lib', 'lib64', 'sbin']) {
    mkdirSync(join(root, 'usr', d), { recursive: true });
    link(root, d, `usr/${d}`);
  }
  // `sh -c` scripts of the capture and proxy containers (printf is dash's builtin); `test` is
  // the agent's startup probe; `env` runs bin/weft.js's `#!/usr/bin/env node`.
  for (const c of ['sh', 'dash', 'env', 'test', 'cat', 'sleep', 'ls', 'node']) {
    // Always in /usr/bin of the image, wherever this machine has it (node may be in /usr/local).
    addProgram(root, hostCommand(c), seen, `/usr/bin/${c}`);
  }
  // The node image has node in /usr/local/bin.
  link(root, 'usr/local/bin/node', '/usr/bin/node');
  addProgram(root, envoy, seen, '/usr/local/bin/envoy');
  // iptables as Debian installs it: the nft backend behind iptables-restore, and its extensions,
  // which it loads with dlopen (so ldd does not name them).
  addProgram(root, '/usr/sbin/xtables-nft-multi', seen);
  for (const n of ['iptables', 'iptables-restore', 'iptables-save']) {
    link(root, `usr/sbin/${n}`, 'xtables-nft-multi');
  }
  const xt = '/usr/lib/x86_64-linux-gnu/xtables';
  if (existsSync(xt)) {
    for (const so of readdirSync(xt)) addProgram(root, join(xt, so), seen);
  }
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(
    join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nweft:x:65532:65532:weft:/weft:/bin/sh\nenvoy:x:1337:1337:envoy:/tmp:/bin/sh\n',
  );
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nweft:x:65532:\nenvoy:x:1337:\n');
  writeFileSync(join(root, 'etc/nsswitch.conf'), 'passwd: files\ngroup: files\nhosts: files dns\n');
  for (const d of ['tmp', 'run', 'var/run', 'root', 'proc', 'sys', 'dev'])
    mkdirSync(join(root, d), { recursive: true });
  chmodSync(join(root, 'tmp'), 0o1777);
}

/** The application layer: Weft's compiled tree as the Dockerfile's last stage copies it. */
function weftTree(root: string, repo: string): void {
  const app = join(root, 'weft');
  mkdirSync(app, { recursive: true });
  // Production packages only, as `npm ci --omit=dev` installs them.
  const modules = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], {
    cwd: repo,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  })
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.includes('node_modules'))
    .map((l) => relative(realpathSync(join(repo, 'node_modules')), realpathSync(l)));
  for (const m of modules) {
    const from = join(repo, 'node_modules', m);
    cpSync(from, join(app, 'node_modules', m), {
      recursive: true,
      dereference: true,
      // As the Dockerfile deletes them: Node never loads TypeScript, source maps or docs. A
      // nested node_modules is copied as its own entry of the list when it is production.
      filter: (src) => !/\.(ts|map|md)$/.test(src) && !(src !== from && src.endsWith('/node_modules')),
    });
  }
  for (const p of WEFT_APP_PATHS) {
    cpSync(join(repo, p), join(app, p), { recursive: true, dereference: true });
  }
  link(root, 'usr/local/bin/weft', '/weft/bin/weft.js');
}

/**
 * What Weft's image holds of the project, under `/weft`, as the Dockerfile's last stage copies it
 * (`dist/e2e` besides: the cluster conformance workloads run from the same image here).
 */
export const WEFT_APP_PATHS: readonly string[] = [
  'dist/src',
  'dist/web',
  'dist/test/kube',
  'dist/e2e',
  'bin',
  'package.json',
  'deploy/manifests',
];

/** One layer: the tree under `dir` as an uncompressed tar owned by root, and its digest. */
function layer(dir: string, out: string): { file: string; digest: string } {
  execFileSync('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', dir, '-cf', out, '.']);
  return { file: out, digest: `sha256:${createHash('sha256').update(readFileSync(out)).digest('hex')}` };
}

interface ImageSpec {
  name: string;
  layers: { file: string; digest: string }[];
  entrypoint: string[];
  user?: string;
  workdir?: string;
  env?: string[];
}

/** A `docker save` archive (manifest.json, config, layers) of the images, for `ctr images import`. */
function dockerArchive(images: ImageSpec[], work: string, out: string): void {
  const dir = join(work, 'archive');
  mkdirSync(dir, { recursive: true });
  const manifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
  for (const img of images) {
    const layerNames = img.layers.map((l) => {
      const name = `${l.digest.slice(7)}/layer.tar`;
      if (!existsSync(join(dir, name))) {
        mkdirSync(join(dir, dirname(name)), { recursive: true });
        copyFileSync(l.file, join(dir, name));
      }
      return name;
    });
    const config = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {
        Entrypoint: img.entrypoint,
        Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...(img.env ?? [])],
        ...(img.user ? { User: img.user } : {}),
        ...(img.workdir ? { WorkingDir: img.workdir } : {}),
      },
      rootfs: { type: 'layers', diff_ids: img.layers.map((l) => l.digest) },
      history: img.layers.map(() => ({ created_by: 'weft cluster tier (test/cluster/images.ts)' })),
    });
    const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
    writeFileSync(join(dir, configName), config);
    manifest.push({ Config: configName, RepoTags: [img.name], Layers: layerNames });
  }
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  execFileSync('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', dir, '-cf', out, '.']);
}

/** Options of {@link buildImages}. */
export interface BuildImagesOptions {
  /** The repository root, with `npm run build` done. */
  repo: string;
  /** A folder to build in (it grows to a few hundred MB). */
  work: string;
  /** The pinned Envoy binary. */
  envoy: string;
  /** The static pause binary (scripts/setup-kube.sh builds it). */
  pause: string;
}

/** Builds every image of the tier into one archive; returns its path and the images' names. */
export function buildImages(o: BuildImagesOptions): { archive: string; names: ImageNames } {
  const names = imageNames(o.repo);
  const base = join(o.work, 'rootfs-base');
  const app = join(o.work, 'rootfs-weft');
  const pause = join(o.work, 'rootfs-pause');
  baseTree(base, o.envoy);
  weftTree(app, o.repo);
  mkdirSync(pause, { recursive: true });
  copyFileSync(o.pause, join(pause, 'pause'));
  chmodSync(join(pause, 'pause'), 0o755);
  const baseLayer = layer(base, join(o.work, 'base.tar'));
  const appLayer = layer(app, join(o.work, 'weft.tar'));
  const pauseLayer = layer(pause, join(o.work, 'pause.tar'));
  const weft = dockerfileFinalStage(readFileSync(join(o.repo, 'Dockerfile'), 'utf8'));
  const archive = join(o.work, 'images.tar');
  dockerArchive(
    [
      {
        name: names.weft,
        layers: [baseLayer, appLayer],
        entrypoint: weft.entrypoint,
        ...(weft.user ? { user: weft.user } : {}),
        workdir: weft.workdir ?? '/weft',
        env: ['NODE_ENV=production'],
      },
      {
        name: names.echo,
        layers: [baseLayer, appLayer],
        entrypoint: ['node', 'dist/e2e/cluster/workload.js'],
        workdir: '/weft',
        env: ['GRPC_XDS_EXPERIMENTAL_RBAC=true'],
      },
      { name: names.sidecar, layers: [baseLayer], entrypoint: ['/usr/local/bin/envoy'] },
      { name: names.pause, layers: [pauseLayer], entrypoint: ['/pause'] },
    ],
    o.work,
    archive,
  );
  return { archive, names };
}

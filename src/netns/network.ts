/**
 * A private network of pods on one machine: a Linux bridge with the host's address on it, and a
 * network namespace per pod joined to the bridge by a veth pair, with the pod's address and a
 * default route via the host. A virtual ClusterIP thus has a route inside the pod, so a call to it
 * leaves through the pod's OUTPUT chain, where the sidecar's capture rules redirect it to Envoy;
 * calls between pods stay on the bridge. Weft, in the root namespace, is reached on the host
 * address.
 *
 * Nothing leaves the bridge: no NAT is set up, ip_forward is left as it is, and FORWARD rules drop
 * whatever would be routed into or out of the bridge (so even a host that forwards does not carry
 * pod traffic elsewhere), while frames between pods on the bridge are accepted. Every namespace,
 * link and rule carries the network's name, so a run that crashed is cleaned up by the next one
 * with the same name ({@link PodNetwork.create} does it first); a process `exit` handler removes
 * everything too when the owner forgets to call {@link PodNetwork.destroy}.
 */
import { sh, shQuiet, shQuietSync } from './system';

/** Options of {@link PodNetwork.create}. */
export interface PodNetworkOptions {
  /**
   * Short name (1-6 of `a-z0-9`), unique per user of this module on the machine: the bridge is
   * `wft-<name>`, namespaces `wft-<name>-<n>`, iptables rules carry the comment `weft-netns:<name>`.
   */
  name: string;
  /** The pods' IPv4 /24, e.g. `10.213.0.0/24`; the host takes `.1`, pods `.10`-`.199`, services `.200`-`.254`. */
  subnet: string;
}

/** A pod's network namespace. */
export interface PodNamespace {
  /** The namespace's name (for `ip netns exec`). */
  readonly netns: string;
  /** The pod's address on the bridge. */
  readonly ip: string;
}

const NAME = /^[a-z0-9]{1,6}$/;

/** The FORWARD and INPUT rules of a bridge; `-I` inserts them first, `-D` deletes them. */
function rules(bridge: string, host: string, comment: string): string[][] {
  const c = ['-m', 'comment', '--comment', comment];
  return [
    // Frames between pods on the bridge (seen by iptables when br_netfilter is loaded).
    ['FORWARD', '-i', bridge, '-o', bridge, ...c, '-j', 'ACCEPT'],
    // Anything routed out of or into the bridge: nothing leaves, nothing enters.
    ['FORWARD', '-i', bridge, ...c, '-j', 'DROP'],
    ['FORWARD', '-o', bridge, ...c, '-j', 'DROP'],
    // Pods reach the host address (Weft) even where INPUT drops by default.
    ['INPUT', '-i', bridge, '-d', `${host}/32`, ...c, '-j', 'ACCEPT'],
  ];
}

/** The network; see the module comment. */
export class PodNetwork {
  /** The bridge's name. */
  readonly bridge: string;
  /** The host's address on the bridge: what pods reach Weft on. */
  readonly hostAddress: string;
  /** Prefix length of the subnet (24). */
  readonly prefixLength = 24;
  private readonly base: string;
  private nextPod = 10;
  private nextService = 200;
  private nextNs = 0;
  private readonly namespaces = new Map<string, PodNamespace>();
  private destroyed = false;
  private readonly onExit = (): void => this.destroySync();

  private constructor(
    readonly name: string,
    subnet: string,
  ) {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/.exec(subnet);
    if (!m || m.slice(1, 4).some((x) => Number(x) > 255))
      throw new Error(`subnet "${subnet}" is not an IPv4 /24 such as 10.213.0.0/24`);
    this.base = `${m[1]}.${m[2]}.${m[3]}`;
    this.bridge = `wft-${name}`;
    this.hostAddress = `${this.base}.1`;
  }

  private get comment(): string {
    return `weft-netns:${this.name}`;
  }

  /**
   * Removes what a previous network of this name left behind (its pods' processes, namespaces,
   * bridge and rules), then creates the bridge with the host address and the FORWARD rules.
   */
  static async create(o: PodNetworkOptions): Promise<PodNetwork> {
    if (!NAME.test(o.name)) throw new Error(`network name "${o.name}" must be 1-6 of a-z and 0-9`);
    const net = new PodNetwork(o.name, o.subnet);
    await PodNetwork.cleanStale(o.name);
    process.on('exit', net.onExit);
    try {
      await sh('ip', ['link', 'add', net.bridge, 'type', 'bridge']);
      await sh('ip', ['addr', 'add', `${net.hostAddress}/${net.prefixLength}`, 'dev', net.bridge]);
      await sh('ip', ['link', 'set', net.bridge, 'up']);
      // Inserted first in their chains, in this order: the ACCEPT of frames between pods must
      // come before the DROPs of what crosses the bridge's edge.
      const position = new Map<string, number>();
      for (const [chain, ...spec] of rules(net.bridge, net.hostAddress, net.comment)) {
        const at = (position.get(chain!) ?? 0) + 1;
        position.set(chain!, at);
        await sh('iptables', ['-I', chain!, String(at), ...spec]);
      }
    } catch (err) {
      await net.destroy();
      throw err;
    }
    return net;
  }

  /** Deletes every namespace (killing its processes), the bridge and the rules of network `name`. */
  static async cleanStale(name: string): Promise<void> {
    const prefix = `wft-${name}-`;
    const list = await shQuiet('ip', ['netns', 'list']);
    for (const line of list.split('\n')) {
      const ns = line.split(' ')[0] ?? '';
      if (!ns.startsWith(prefix)) continue;
      await killNamespace(ns);
      await shQuiet('ip', ['netns', 'del', ns]);
    }
    await shQuiet('ip', ['link', 'del', `wft-${name}`]);
    // A namespace can outlive its name while the kernel still holds a reference to it, and with
    // it the host end of its veth, which would block the next run's pod of the same number.
    const links = await shQuiet('ip', ['-o', 'link', 'show']);
    for (const m of links.matchAll(new RegExp(`^\\d+: (wft${name}h\\d+)[@:]`, 'gm')))
      await shQuiet('ip', ['link', 'del', m[1]!]);
    for (const chain of ['FORWARD', 'INPUT']) {
      const listed = await shQuiet('iptables', ['-S', chain]);
      for (const spec of ruleSpecs(listed, `weft-netns:${name}`)) await shQuiet('iptables', ['-D', ...spec]);
    }
  }

  /** A new pod address on the bridge. */
  podAddress(): string {
    if (this.nextPod > 199) throw new Error(`network ${this.name}: no pod addresses left (at most 190 pods)`);
    return `${this.base}.${this.nextPod++}`;
  }

  /**
   * A new virtual service address (a ClusterIP): on the bridge's subnet, held by nothing, so only
   * capture (or nothing) answers it.
   */
  serviceAddress(): string {
    if (this.nextService > 254)
      throw new Error(`network ${this.name}: no service addresses left (at most 55)`);
    return `${this.base}.${this.nextService++}`;
  }

  /** Creates a namespace with `ip` on the bridge, loopback up and a default route via the host. */
  async addNamespace(ip: string): Promise<PodNamespace> {
    if (this.destroyed) throw new Error(`network ${this.name} is destroyed`);
    if (!ip.startsWith(`${this.base}.`))
      throw new Error(`${ip} is not on network ${this.name} (${this.base}.0/24)`);
    const n = this.nextNs++;
    const netns = `wft-${this.name}-${n}`;
    const veth = `wft${this.name}h${n}`;
    const ns = { netns, ip };
    this.namespaces.set(netns, ns);
    await sh('ip', ['netns', 'add', netns]);
    await sh('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    await sh('ip', ['link', 'set', veth, 'master', this.bridge, 'up']);
    await sh('ip', ['-n', netns, 'addr', 'add', `${ip}/${this.prefixLength}`, 'dev', 'eth0']);
    await sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    await sh('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    await sh('ip', ['-n', netns, 'route', 'add', 'default', 'via', this.hostAddress]);
    return ns;
  }

  /** Kills what still runs in a namespace and deletes it (its veth pair goes with it). */
  async removeNamespace(ns: PodNamespace): Promise<void> {
    await killNamespace(ns.netns);
    await shQuiet('ip', ['netns', 'del', ns.netns]);
    this.namespaces.delete(ns.netns);
  }

  /** Removes every namespace, the bridge and the rules. Safe to call twice. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const ns of [...this.namespaces.values()]) await this.removeNamespace(ns);
    await PodNetwork.cleanStale(this.name);
    process.off('exit', this.onExit);
  }

  private destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const ns of this.namespaces.keys()) {
      for (const pid of shQuietSync('ip', ['netns', 'pids', ns]).split('\n')) killPid(pid);
      shQuietSync('ip', ['netns', 'del', ns]);
    }
    shQuietSync('ip', ['link', 'del', this.bridge]);
    for (const chain of ['FORWARD', 'INPUT']) {
      for (const spec of ruleSpecs(shQuietSync('iptables', ['-S', chain]), this.comment))
        shQuietSync('iptables', ['-D', ...spec]);
    }
  }
}

function killPid(pid: string): void {
  const n = Number(pid.trim());
  if (!Number.isInteger(n) || n <= 1) return;
  try {
    process.kill(n, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Kills every process in a namespace (only pods of ours run there) and waits until none is left. */
async function killNamespace(netns: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const pids = (await shQuiet('ip', ['netns', 'pids', netns])).split('\n').filter((p) => p.trim() !== '');
    if (pids.length === 0) return;
    for (const p of pids) killPid(p);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The rule specs (without `-A`) of `iptables -S` output lines carrying `comment`. iptables quotes
 * a comment (`--comment "weft-netns:et"`), and takes it back unquoted as an argument.
 */
function ruleSpecs(listing: string, comment: string): string[][] {
  return listing
    .split('\n')
    .filter((l) => l.startsWith('-A '))
    .map((l) => (l.slice(3).match(/"[^"]*"|\S+/g) ?? []).map((w) => w.replace(/^"(.*)"$/, '$1')))
    .filter((words) => words.includes(comment));
}

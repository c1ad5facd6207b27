/**
 * The host tools pods in network namespaces need, and running them. Everything here changes the
 * machine (network namespaces, links, iptables rules), so it runs as root only, and every command
 * that fails throws with the command line and what it printed.
 */
import { execFile, execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * Commands the pods are made with: `ip` (namespaces, veths, the bridge), `iptables` (the bridge's
 * FORWARD rules) and `iptables-restore` (the capture container), `unshare` and `mount` (a mount
 * namespace per pod process), `setpriv` (the sidecars' uid and capabilities), `sh` (the proxy
 * container's script).
 */
export const REQUIRED_COMMANDS = [
  'ip',
  'iptables',
  'iptables-restore',
  'unshare',
  'setpriv',
  'mount',
  'sh',
] as const;

/** Where a command is on PATH (plus the sbin folders, which a non-login root shell may lack). */
export function which(command: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = join(dir, command);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The path of a required command; throws naming it and the package that has it. */
export function commandPath(command: string): string {
  const p = which(command);
  if (!p) throw new Error(`${command} not found on PATH: ${missingHint([command])}`);
  return p;
}

function missingHint(commands: readonly string[]): string {
  const pkg: Record<string, string> = {
    ip: 'iproute2',
    iptables: 'iptables',
    'iptables-restore': 'iptables',
    unshare: 'util-linux',
    setpriv: 'util-linux',
    mount: 'mount',
    sh: 'dash',
  };
  const pkgs = [...new Set(commands.map((c) => pkg[c] ?? c))].join(' ');
  return `install ${pkgs} (Debian: apt-get install ${pkgs})`;
}

/**
 * Why pods in network namespaces cannot run here, or undefined when they can: not root, missing
 * commands, or a kernel or sandbox that refuses new network namespaces (checked by making one).
 */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  const reasons: string[] = [];
  if (typeof process.getuid !== 'function' || process.getuid() !== 0)
    reasons.push(
      'pods in network namespaces need root (namespaces, iptables, mounts, other uids): run as root',
    );
  const missing = REQUIRED_COMMANDS.filter((c) => !which(c));
  if (missing.length > 0) reasons.push(`missing ${missing.join(', ')}: ${missingHint(missing)}`);
  if (reasons.length > 0) return reasons.join('; ');
  const probe = `weft-probe-${process.pid}`;
  try {
    execFileSync(commandPath('ip'), ['netns', 'add', probe], { stdio: 'pipe' });
  } catch (err) {
    return `cannot create a network namespace (ip netns add): ${stderrOf(err)}`;
  } finally {
    try {
      execFileSync(commandPath('ip'), ['netns', 'del', probe], { stdio: 'pipe' });
    } catch {
      // never made
    }
  }
  return undefined;
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: Buffer | string; message?: string };
  const text = e.stderr ? e.stderr.toString().trim() : '';
  return text || e.message || String(err);
}

/** Runs a command to completion; rejects with the command line and its stderr when it fails. */
export function sh(command: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(commandPath(command), args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Like {@link sh}, but a failure is ignored (for cleanup of what may not exist). */
export async function shQuiet(command: string, args: readonly string[]): Promise<string> {
  try {
    return await sh(command, args);
  } catch {
    return '';
  }
}

/** Synchronous {@link shQuiet}, for cleanup in a process `exit` handler. */
export function shQuietSync(command: string, args: readonly string[]): string {
  try {
    return execFileSync(commandPath(command), args, { stdio: 'pipe', encoding: 'utf8' });
  } catch {
    return '';
  }
}

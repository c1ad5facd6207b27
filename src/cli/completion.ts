/**
 * `weft completion bash|zsh|fish`: a shell completion script, generated from the command tree
 * itself, so every command, subcommand and flag `weft --help` lists completes.
 */
import type { Command } from 'commander';
import type { CommandRegistrar } from './index';

interface Node {
  path: string[];
  commands: string[];
  flags: string[];
}

function walk(cmd: Command, path: string[], out: Node[]): void {
  const flags = cmd.options.flatMap((o) => [o.long, o.short].filter((x): x is string => Boolean(x)));
  out.push({ path, commands: cmd.commands.map((c) => c.name()), flags: [...flags, '--help'] });
  for (const c of cmd.commands) walk(c, [...path, c.name()], out);
}

/** The bash script (also sourced by zsh through bashcompinit). */
export function bashCompletion(root: Command): string {
  const nodes: Node[] = [];
  walk(root, [], nodes);
  const cases = nodes
    .map((n) => `    "${n.path.join(' ')}") words="${[...n.commands, ...n.flags].join(' ')}" ;;`)
    .join('\n');
  return `# weft completion for bash: source <(weft completion bash)
_weft() {
  local cur path="" w words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  # The command path so far: the words before the cursor that are not flags or flag values.
  for w in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case "$w" in -*) ;; *) if [[ -n "$(_weft_words "\${path:+$path }$w")" ]]; then path="\${path:+$path }$w"; fi ;; esac
  done
  words="$(_weft_words "$path")"
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
_weft_words() {
  local words=""
  case "$1" in
${cases}
  esac
  echo "$words"
}
complete -o default -F _weft weft
`;
}

/** The zsh script: the bash one through bashcompinit. */
export function zshCompletion(root: Command): string {
  return `# weft completion for zsh: source <(weft completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bashCompletion(root).split('\n').slice(1).join('\n')}`;
}

/** The fish script. */
export function fishCompletion(root: Command): string {
  const nodes: Node[] = [];
  walk(root, [], nodes);
  const lines = ['# weft completion for fish: weft completion fish | source', 'complete -c weft -f'];
  for (const n of nodes) {
    // fish has no notion of a command path: match on the words seen so far.
    const cond =
      n.path.length === 0
        ? `not __fish_seen_subcommand_from ${nodes[0]!.commands.join(' ')}`
        : n.path.map((p) => `__fish_seen_subcommand_from ${p}`).join('; and ');
    for (const c of n.commands) lines.push(`complete -c weft -n '${cond}' -a ${c}`);
    for (const f of n.flags) {
      if (f.startsWith('--')) lines.push(`complete -c weft -n '${cond}' -l ${f.slice(2)}`);
      else lines.push(`complete -c weft -n '${cond}' -s ${f.slice(1)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Registers `weft completion`. */
export const registerCompletion: CommandRegistrar = (program: Command, setExitCode) => {
  program
    .command('completion <shell>')
    .description(
      'Print a shell completion script for bash, zsh or fish:\n' +
        '  source <(weft completion bash)      (add to ~/.bashrc)\n' +
        '  source <(weft completion zsh)       (add to ~/.zshrc)\n' +
        '  weft completion fish | source       (or > ~/.config/fish/completions/weft.fish)',
    )
    .action((shell: string) => {
      const make = { bash: bashCompletion, zsh: zshCompletion, fish: fishCompletion }[shell];
      if (!make) {
        process.stderr.write(`weft completion: the shell must be bash, zsh or fish, not "${shell}"\n`);
        setExitCode(2);
        return;
      }
      process.stdout.write(make(program));
      setExitCode(0);
    });
};

/** `cowbuf completion bash`: a completion script generated from the command tree itself. */
import { Command } from 'commander';
import { ValidationError } from '../../errors.js';
import type { Io } from '../io.js';

function words(command: Command): string[] {
  return [...command.commands.map((sub) => sub.name()), ...command.options.map((option) => option.long ?? '').filter(Boolean)];
}

/** One `case` branch per command path, listing its subcommands and options. */
export function bashCompletion(root: Command): string {
  const branches: string[] = [];
  const paths: string[] = [];
  const walk = (command: Command, path: string[]) => {
    branches.push(`    "${path.join(' ')}") opts="${words(command).join(' ')}" ;;`);
    if (path.length > 0) paths.push(path.join(' '));
    for (const sub of command.commands) walk(sub, [...path, sub.name()]);
  };
  walk(root, []);
  return `# bash completion for cowbuf; install: cowbuf completion bash > /etc/bash_completion.d/cowbuf
_cowbuf() {
  local cur path="" word opts next
  local paths="|${paths.join('|')}|"
  cur="\${COMP_WORDS[COMP_CWORD]}"
  # Only subcommands extend the path: options and arguments (a VM name, a file) do not.
  for word in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    next="\${path:+$path }$word"
    case "$paths" in *"|$next|"*) path="$next" ;; esac
  done
  case "$path" in
${branches.join('\n')}
    *) opts="" ;;
  esac
  COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
}
complete -o default -F _cowbuf cowbuf
`;
}

export function completionCommand(io: Io, root: () => Command): Command {
  return new Command('completion')
    .description('print a shell completion script (bash)')
    .argument('[shell]', 'bash', 'bash')
    .action((shell: string) => {
      if (shell !== 'bash') throw new ValidationError('shell', shell, '`bash`');
      io.stdout(bashCompletion(root()));
    });
}

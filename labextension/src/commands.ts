/**
 * "Run as HF Job": put `%%hfjob <default flags>` on top of the active code cell
 * (unless it is there already) and run the cell.
 */
import type { NotebookPanel } from '@jupyterlab/notebook';
import type { CommandRegistry } from '@lumino/commands';

export const COMMAND_ID = 'hfjobs-magic:run-as-job';
const MAGIC = '%%hfjob';

/** The extension's settings (schema/plugin.json); empty strings mean "the magic's own default". */
export interface IJobDefaults {
  flavor: string;
  timeout: string;
  push: string;
  repoType: string;
  yes: boolean;
  extraFlags: string;
}

export const DEFAULTS: IJobDefaults = {
  flavor: 'cpu-basic',
  timeout: '30m',
  push: '',
  repoType: 'model',
  yes: true,
  extraFlags: ''
};

/** Quote a value for the magic's shell-like argument splitting (like Python's shlex.quote). */
export function quote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'"'"'`)}'`;
}

/** The magic line for these defaults, e.g. `%%hfjob --flavor t4-small --timeout 2h --yes`. */
export function magicLine(defaults: IJobDefaults): string {
  const flags: string[] = [];
  const add = (flag: string, value: string) => {
    if (value.trim()) {
      flags.push(flag, quote(value.trim()));
    }
  };
  add('--flavor', defaults.flavor);
  add('--timeout', defaults.timeout);
  add('--push', defaults.push);
  if (defaults.push.trim()) {
    add('--repo-type', defaults.repoType);
  }
  if (defaults.yes) {
    flags.push('--yes');
  }
  if (defaults.extraFlags.trim()) {
    flags.push(defaults.extraFlags.trim()); // typed by the user as flags: kept verbatim
  }
  return [MAGIC, ...flags].join(' ');
}

/** The cell source with the magic on top; unchanged when its first non-blank line already is one. */
export function withMagic(source: string, defaults: IJobDefaults): string {
  const first = source.split('\n').find(line => line.trim() !== '') ?? '';
  if (first === MAGIC || first.startsWith(`${MAGIC} `) || first.startsWith(`${MAGIC}\t`)) {
    return source;
  }
  return `${magicLine(defaults)}\n${source}`;
}

/**
 * Turn the active code cell into a job cell and run it (only that cell).
 * The kernel is asked, silently, to `%load_ext hfjobs_magic` first, so the
 * button works in a notebook that never loaded the extension.
 */
export async function runAsJob(
  panel: NotebookPanel,
  commands: CommandRegistry,
  defaults: IJobDefaults
): Promise<void> {
  const cell = panel.content.activeCell;
  if (!cell || cell.model.type !== 'code') {
    return;
  }
  const source = cell.model.sharedModel.getSource();
  const next = withMagic(source, defaults);
  if (next !== source) {
    cell.model.sharedModel.setSource(next);
  }
  await panel.sessionContext.ready;
  const kernel = panel.sessionContext.session?.kernel;
  if (kernel) {
    const load = kernel.requestExecute({ code: '%load_ext hfjobs_magic', silent: true, store_history: false });
    await load.done;
  }
  panel.content.deselectAll();
  await commands.execute('notebook:run-cell');
}

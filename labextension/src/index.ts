/**
 * The "Run as HF Job" plugin: a command (cell toolbar button, command palette)
 * whose default flags come from this extension's settings; and the "HF Jobs"
 * panel in the left sidebar (panel.ts), fed by the server extension.
 * The job card renderer is the package's mime extension (renderer.ts).
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { COMMAND_ID, DEFAULTS, IJobDefaults, runAsJob } from './commands';
import { JobsPanel, serverApi } from './panel';

const PLUGIN_ID = 'hfjobs-magic-lab:plugin';

const jobIcon = new LabIcon({
  name: 'hfjobs-magic-lab:job',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">' +
    '<path class="jp-icon3" fill="#616161" d="M8 1 2 4v8l6 3 6-3V4L8 1zm0 1.7L12.3 5 8 7.2 3.7 5 8 2.7zM3 6.1l4.5 2.3v5.3L3 11.4V6.1zm5.5 7.6V8.4L13 6.1v5.3l-4.5 2.3z"/>' +
    '</svg>'
});

const runPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Run a code cell on Hugging Face Jobs from the cell toolbar or the command palette.',
  autoStart: true,
  requires: [INotebookTracker, ISettingRegistry],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    registry: ISettingRegistry,
    palette: ICommandPalette | null
  ) => {
    let defaults: IJobDefaults = { ...DEFAULTS };
    void registry.load(PLUGIN_ID).then(settings => {
      const update = () => {
        defaults = { ...DEFAULTS, ...(settings.composite as Partial<IJobDefaults>) };
      };
      update();
      settings.changed.connect(update);
    }).catch(reason => console.error(`${PLUGIN_ID}: settings not loaded, using defaults`, reason));

    app.commands.addCommand(COMMAND_ID, {
      label: args => (args.toolbar ? '' : 'Run Cell as HF Job'),
      caption: 'Put %%hfjob with your default flags (Settings > HF Jobs) on top of this cell and run it',
      icon: jobIcon,
      isEnabled: () => tracker.activeCell?.model.type === 'code',
      execute: async () => {
        const panel = tracker.currentWidget;
        if (panel) {
          await runAsJob(panel, app.commands, defaults);
        }
      }
    });
    palette?.addItem({ command: COMMAND_ID, category: 'HF Jobs' });
  }
};

/** Open a notebook of the server's tree and put its cell `cellIndex` (when known) in view, selected. */
async function openCell(app: JupyterFrontEnd, path: string, cellIndex: number | null): Promise<void> {
  const widget = await app.commands.execute('docmanager:open', { path });
  if (!(widget instanceof NotebookPanel) || cellIndex === null) {
    return;
  }
  await widget.context.ready;
  await widget.revealed;
  const cell = widget.content.widgets[cellIndex];
  if (cell) {
    widget.content.activeCellIndex = cellIndex;
    await widget.content.scrollToCell(cell);
  }
}

const panelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'hfjobs-magic-lab:panel',
  description: 'The "HF Jobs" panel: your jobs in the left sidebar, with Cancel, from the server extension.',
  autoStart: true,
  optional: [ILayoutRestorer],
  activate: (app: JupyterFrontEnd, restorer: ILayoutRestorer | null) => {
    const panel = new JobsPanel(serverApi(app.serviceManager.serverSettings), (path, index) =>
      openCell(app, path, index)
    );
    panel.title.icon = jobIcon;
    app.shell.add(panel, 'left', { rank: 900 });
    restorer?.add(panel, panel.id); // open again after a reload if it was open
  }
};

export default [runPlugin, panelPlugin];

/**
 * The "Run as HF Job" plugin: a command (cell toolbar button, command palette)
 * whose default flags come from this extension's settings.
 * The job card renderer is the package's mime extension (renderer.ts).
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { COMMAND_ID, DEFAULTS, IJobDefaults, runAsJob } from './commands';

const PLUGIN_ID = 'hfjobs-magic-lab:plugin';

const jobIcon = new LabIcon({
  name: 'hfjobs-magic-lab:job',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">' +
    '<path class="jp-icon3" fill="#616161" d="M8 1 2 4v8l6 3 6-3V4L8 1zm0 1.7L12.3 5 8 7.2 3.7 5 8 2.7zM3 6.1l4.5 2.3v5.3L3 11.4V6.1zm5.5 7.6V8.4L13 6.1v5.3l-4.5 2.3z"/>' +
    '</svg>'
});

const plugin: JupyterFrontEndPlugin<void> = {
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

export default plugin;

/**
 * The "HF Jobs" panel: the user's jobs in the left sidebar (DESIGN.md section 4, "Operating jobs").
 *
 * Its data comes from the server extension (hfjobs_magic/server): `GET hfjobs/jobs` and
 * `POST hfjobs/jobs/{id}/cancel`, answered with the server's own Hub login, so no token is
 * ever in the page. Job names, labels and messages are untrusted: the DOM is built with
 * createElement and text nodes only, and only http(s) URLs become links.
 */
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { asList, asObject, duration, el, link, money, num, text } from './renderer';

export const PANEL_ID = 'hfjobs-panel';
export const REFRESH_MS = 5000;
const ACTIVE = ['RUNNING', 'SCHEDULING'];
const STAGES = ['SCHEDULING', 'RUNNING', 'COMPLETED', 'CANCELED', 'ERROR', 'DELETED'];

type Json = Record<string, unknown>;

/** What the panel asks of the server extension. */
export interface IJobsApi {
  list(): Promise<unknown>;
  cancel(jobId: string): Promise<void>;
}

/** Opens a notebook of the server's tree, at a cell when its index is known. */
export type OpenCell = (path: string, cellIndex: number | null) => Promise<void>;

/** The server extension's routes, through Jupyter's own authenticated requests. */
export function serverApi(settings: ServerConnection.ISettings = ServerConnection.makeSettings()): IJobsApi {
  const call = async (path: string, init: RequestInit = {}): Promise<unknown> => {
    const response = await ServerConnection.makeRequest(`${settings.baseUrl}hfjobs/${path}`, init, settings);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const said = text(asObject(body).error);
      throw new Error(said || `the Jupyter server answered HTTP ${response.status} (is hfjobs-magic installed there?)`);
    }
    return body;
  };
  return {
    list: () => call('jobs'),
    cancel: async (jobId: string) => {
      await call(`jobs/${encodeURIComponent(jobId)}/cancel`, { method: 'POST' });
    }
  };
}

/** The list of rows for the server's answer `{"jobs": [...]}`; anything malformed shows as missing. */
export function renderJobs(answer: unknown, onCancel?: (jobId: string) => void, onOpen?: OpenRow): HTMLElement {
  const jobs = asList(asObject(answer).jobs).map(asObject).filter(job => text(job.id));
  if (!jobs.length) {
    return el('div', 'hfjobs-empty', 'No jobs yet in this account.');
  }
  return el('ul', 'hfjobs-list', ...jobs.map(job => renderRow(job, onCancel, onOpen)));
}

type OpenRow = (path: string, cellIndex: number | null) => void;

/** One job: stage badge, id (a link), name, flavor, duration, cost, notebook and cell; Cancel while it runs. */
export function renderRow(job: Json, onCancel?: (jobId: string) => void, onOpen?: OpenRow): HTMLElement {
  const id = text(job.id);
  const stage = text(job.stage) || 'UNKNOWN';
  const row = el('li', 'hfjobs-row');
  row.dataset.jobId = id;
  row.dataset.stage = stage;
  const badge = el('span', 'hfjob-badge', stage);
  badge.classList.add(`hfjob-badge-${STAGES.includes(stage) ? stage.toLowerCase() : 'unknown'}`);
  const head = el('div', 'hfjobs-row-head', badge, link(text(job.url), id, 'hfjobs-job-link'));
  if (ACTIVE.includes(stage)) {
    head.append(cancelButton(id, onCancel));
  }
  row.append(head);
  if (text(job.name)) {
    row.append(el('div', 'hfjobs-name', text(job.name)));
  }
  row.append(facts(job), where(job));
  if (text(job.message)) {
    row.append(el('div', 'hfjobs-message', text(job.message)));
  }
  const path = text(job.path);
  if (path && onOpen) {
    row.classList.add('hfjobs-openable');
    row.title = `Open ${path}${num(job.cell_index) === null ? '' : ' at the cell that started this job'}`;
    row.addEventListener('click', event => {
      if (!(event.target as HTMLElement).closest('a, button')) {
        onOpen(path, num(job.cell_index));
      }
    });
  }
  return row;
}

function facts(job: Json): HTMLElement {
  const seconds = num(job.duration_s);
  const rate = num(job.usd_per_hour);
  return el(
    'div',
    'hfjobs-facts',
    el('span', 'hfjobs-flavor', text(job.flavor) || 'unknown flavor'),
    el('span', 'hfjobs-duration', seconds === null ? 'not started' : duration(seconds)),
    el('span', 'hfjobs-cost', money(num(job.cost_usd)) + (rate === null ? '' : ` (${money(rate)}/h)`))
  );
}

/** The notebook and cell a job came from, when a `%%hfjob` cell started it. */
function where(job: Json): HTMLElement {
  const notebook = text(job.notebook);
  if (!notebook) {
    return el('div', 'hfjobs-where hfjobs-where-none', 'not started from a notebook cell');
  }
  const index = num(job.cell_index);
  const cell = index === null ? (text(job.cell) ? `cell ${text(job.cell)}` : '') : `cell ${index + 1}`;
  return el('div', 'hfjobs-where', el('span', 'hfjobs-notebook', notebook), cell ? ` · ${cell}` : '');
}

function cancelButton(jobId: string, onCancel?: (jobId: string) => void): HTMLElement {
  const button = el('button', 'hfjobs-cancel jp-mod-styled jp-mod-warn', 'Cancel') as HTMLButtonElement;
  button.type = 'button';
  button.title = `Cancel job ${jobId}`;
  button.addEventListener('click', event => {
    event.stopPropagation();
    button.disabled = true;
    button.textContent = 'Cancelling…';
    onCancel?.(jobId);
  });
  return button;
}

/** The sidebar widget: refreshes every REFRESH_MS while it is visible, and not at all while hidden. */
export class JobsPanel extends Widget {
  private timer: ReturnType<typeof setInterval> | null = null;
  private body = el('div', 'hfjobs-body');
  private status = el('div', 'hfjobs-status');
  private pending: Promise<void> | null = null;

  constructor(
    private api: IJobsApi,
    private openCell: OpenCell
  ) {
    super();
    this.id = PANEL_ID;
    this.title.label = 'HF Jobs';
    this.title.caption = 'HF Jobs'; // Notebook 7's View > Left Sidebar menu reads "Show HF Jobs"
    this.addClass('hfjobs-panel');
    const refresh = el('button', 'hfjobs-refresh jp-mod-styled', 'Refresh') as HTMLButtonElement;
    refresh.type = 'button';
    refresh.addEventListener('click', () => void this.refresh());
    this.node.append(el('div', 'hfjobs-toolbar', el('span', 'hfjobs-heading', 'HF Jobs'), refresh), this.status,
      this.body);
  }

  /** Ask the server for the jobs once (a refresh already under way is shared, not repeated). */
  refresh(): Promise<void> {
    if (!this.pending) {
      this.pending = this.load().finally(() => {
        this.pending = null;
      });
    }
    return this.pending;
  }

  private async load(): Promise<void> {
    try {
      const answer = await this.api.list();
      this.body.replaceChildren(renderJobs(answer, id => void this.cancel(id), (path, index) => this.open(path, index)));
      this.say('');
    } catch (error) {
      this.say(messageOf(error));
    }
  }

  private async cancel(jobId: string): Promise<void> {
    try {
      await this.api.cancel(jobId);
    } catch (error) {
      this.say(`Could not cancel ${jobId}: ${messageOf(error)}`);
      return;
    }
    await this.refresh();
  }

  private open(path: string, cellIndex: number | null): void {
    this.openCell(path, cellIndex).catch(error => this.say(`Could not open ${path}: ${messageOf(error)}`));
  }

  /** One line in the panel: an error, or nothing. */
  private say(message: string): void {
    this.status.textContent = message;
    this.status.classList.toggle('hfjobs-error', message !== '');
  }

  protected onAfterShow(): void {
    void this.refresh();
    this.timer ??= setInterval(() => {
      if (this.isVisible) {
        void this.refresh();
      }
    }, REFRESH_MS);
  }

  protected onAfterHide(): void {
    this.stop();
  }

  dispose(): void {
    this.stop();
    super.dispose();
  }

  private stop(): void {
    if (this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}

function messageOf(error: unknown): string {
  const said = error instanceof Error ? error.message : String(error);
  return (said.split('\n').find(line => line.trim()) ?? 'unknown error').trim();
}

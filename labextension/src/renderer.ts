/**
 * The job card: a MIME renderer for `application/vnd.hfjob+json`.
 *
 * It reads nothing but the saved record (DESIGN.md section 4), so a notebook
 * reopened without a kernel shows the same card. Every string in the record
 * came from the job or the Hub and is untrusted: the DOM is built with
 * createElement and textContent only, and only http(s) URLs become links.
 */
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

export const MIME_TYPE = 'application/vnd.hfjob+json';

const STAGES = ['SCHEDULING', 'RUNNING', 'COMPLETED', 'CANCELED', 'ERROR', 'DELETED', 'SCHEDULED'];
const FINAL_STAGES = ['COMPLETED', 'CANCELED', 'ERROR', 'DELETED'];
const REPO_PREFIX = new Map([
  ['model', ''],
  ['dataset', 'datasets/'],
  ['space', 'spaces/']
]);

type Json = Record<string, unknown>;

/** Options that survive a re-render of the same output. */
export interface ICardState {
  logsOpen: boolean;
}

/** Build the card for one record; anything malformed shows as missing, never throws. */
export function renderCard(data: unknown, state: ICardState = { logsOpen: false }): HTMLElement {
  const record = asObject(data);
  const stage = text(record.stage) || 'UNKNOWN';
  const card = el('div', 'hfjob-card');
  card.dataset.stage = stage;
  card.append(header(record, stage), fields(record));
  const extras = [schedule(asObject(record.schedule)), metrics(asObject(record.metrics)), ...notices(record)];
  card.append(...extras.filter((node): node is HTMLElement => node !== null));
  const push = asList(record.push).map(target => pushTarget(asObject(target), record, stage));
  if (push.length) {
    card.append(el('div', 'hfjob-push', ...push));
  }
  const tail = asList(record.log_tail).map(text);
  if (tail.length) {
    card.append(logs(tail, num(record.log_lines) ?? tail.length, state.logsOpen));
  }
  return card;
}

function header(record: Json, stage: string): HTMLElement {
  const badge = el('span', 'hfjob-badge', stage);
  badge.classList.add(`hfjob-badge-${STAGES.includes(stage) ? stage.toLowerCase() : 'unknown'}`);
  const jobLink = link(text(record.url), text(record.id) || 'unknown id', 'hfjob-job-link');
  const head = el('div', 'hfjob-header', badge, el('span', 'hfjob-title', 'HF Job ', jobLink));
  if (text(record.namespace)) {
    head.append(el('span', 'hfjob-namespace', text(record.namespace)));
  }
  if (text(record.message)) {
    head.append(el('span', 'hfjob-message', text(record.message)));
  }
  return head;
}

function fields(record: Json): HTMLElement {
  const list = el('dl', 'hfjob-fields');
  const row = (name: string, value: string | Node) => {
    const dd = el('dd', `hfjob-field-${name.toLowerCase()}`, value);
    list.append(el('dt', '', name), dd);
  };
  row('Flavor', text(record.flavor) || 'unknown');
  const started = moment(record.started_at);
  row('Started', started ?? 'not yet');
  if (started !== null) {
    // Without a start there is no duration to speak of: a count from zero would look like a running clock.
    row('Duration', duration(num(record.duration_s)));
  }
  const rate = num(record.usd_per_hour);
  row('Cost', money(num(record.cost_usd)) + (rate === null ? '' : ` (${money(rate)}/h)`));
  return list;
}

/** Bytes in decimal units, as `hf jobs stats` and the notebook's views print them. */
export function size(bytes: number | null): string {
  let amount = bytes ?? 0;
  for (const unit of ['B', 'KB', 'MB', 'GB']) {
    if (amount < 1000) {
      return unit === 'B' ? `${amount.toFixed(0)} B` : `${amount.toFixed(1)} ${unit}`;
    }
    amount /= 1000;
  }
  return `${amount.toFixed(1)} TB`;
}

/** The latest CPU, memory and GPU sample with its peak (record.metrics); GPU rows only when the job has one. */
function metrics(m: Json): HTMLElement | null {
  const cpu = num(m.cpu_pct);
  if (cpu === null) {
    return null;
  }
  const peak = asObject(m.peak);
  const pct = (value: number | null) => `${(value ?? 0).toFixed(0)}%`;
  const box = el('div', 'hfjob-metrics');
  const row = (key: string, label: string, value: string, top: string) => {
    const item = el('span', 'hfjob-metric', el('b', '', label), ` ${value}`, el('span', 'hfjob-metric-peak', top));
    item.dataset.metric = key;
    box.append(item);
  };
  row('cpu_pct', 'CPU', pct(cpu), ` (peak ${pct(num(peak.cpu_pct))})`);
  row('memory_bytes', 'Memory', `${size(num(m.memory_bytes))} / ${size(num(m.memory_total_bytes))}`,
    ` (peak ${size(num(peak.memory_bytes))})`);
  const gpu = num(m.gpu_util_pct);
  if (gpu !== null) {
    row('gpu_util_pct', 'GPU', pct(gpu), ` (peak ${pct(num(peak.gpu_util_pct))})`);
    row('gpu_memory_bytes', 'GPU memory', `${size(num(m.gpu_memory_bytes))} / ${size(num(m.gpu_memory_total_bytes))}`,
      '');
    const idle = num(m.idle_gpu_s) ?? 0;
    if (idle > 0) {
      row('idle_gpu_s', 'GPU idle', duration(idle), '');
    }
  }
  return box;
}

/** A --schedule cell's schedule and its next runs (record.schedule). */
function schedule(s: Json): HTMLElement | null {
  if (!text(s.schedule)) {
    return null;
  }
  const runs = asList(s.next_runs).map(value => moment(value) ?? text(value));
  return el('div', 'hfjob-schedule', `Scheduled ${text(s.schedule)} (UTC); next runs: ${runs.join(', ') || 'unknown'}`);
}

/** A long wait for hardware, an idle GPU: one line each (record.notices). */
function notices(record: Json): HTMLElement[] {
  return asList(record.notices).map(raw => {
    const notice = asObject(raw);
    const line = el('div', 'hfjob-notice', `⚠ ${text(notice.text)}`);
    line.dataset.notice = text(notice.kind);
    return line;
  });
}

/** How a push target stands, as the notebook's text/html says it (hfjobs_magic/views/bundle.py). */
function pushState(target: Json, stage: string): { level: 'ok' | 'wait' | 'warn' | 'fail'; label: string } {
  const final = FINAL_STAGES.includes(stage);
  if (text(target.failure)) {
    return { level: 'fail', label: `✗ push failed: ${text(target.failure)}` };
  }
  if (asList(target.commits).length && target.verified === true) {
    return { level: 'ok', label: '✓ verified' };
  }
  if (text(target.check_error)) {
    return { level: 'warn', label: `⚠ not verified: ${text(target.check_error)}` };
  }
  if (final && target.checked === true) {
    return { level: 'warn', label: '⚠ nothing was pushed there: the results are lost' };
  }
  return { level: 'wait', label: final ? 'not verified' : '… nothing yet' };
}

function pushTarget(target: Json, record: Json, stage: string): HTMLElement {
  const repoId = text(target.repo_id);
  const repoType = text(target.repo_type) || 'model';
  const repoUrl = hubUrl(text(record.url), repoType, repoId);
  const state = pushState(target, stage);
  const mark = el('span', `hfjob-push-state hfjob-push-${state.level}`, state.label);
  const line = el('div', 'hfjob-push-line');
  if (REPO_PREFIX.has(repoType)) {
    line.append(el('span', 'hfjob-repo-type', repoType), ' '); // S3/GCS targets are just their URL
  }
  line.append(link(repoUrl, repoId, 'hfjob-repo-link'), ' ', mark);
  const reported = asList(target.reported).length;
  if (reported) {
    line.append(el('span', 'hfjob-push-reported', ` (the job reported ${reported} push${reported > 1 ? 'es' : ''})`));
  }
  const commits = asList(target.commits).map(raw => commitItem(asObject(raw), repoUrl));
  const block = el('div', 'hfjob-push-target', line);
  if (commits.length) {
    block.append(el('ul', 'hfjob-commits', ...commits));
  }
  return block;
}

/** A Hub commit (or an S3/GCS object: its etag, key and date). */
function commitItem(commit: Json, repoUrl: string): HTMLElement {
  const oid = text(commit.oid);
  const commitUrl = repoUrl && oid ? `${repoUrl}/commit/${encodeURIComponent(oid)}` : '';
  const item = el('li', 'hfjob-commit', link(commitUrl, oid.slice(0, 8), 'hfjob-oid'));
  item.append(' ', el('span', 'hfjob-commit-title', text(commit.title)));
  const date = moment(commit.date);
  if (date) {
    item.append(' ', el('span', 'hfjob-commit-date', date));
  }
  return item;
}

function logs(tail: string[], total: number, open: boolean): HTMLElement {
  const summary = el('summary', '', `Log: last ${tail.length} of ${total} lines`);
  const details = el('details', 'hfjob-logs', summary, el('pre', 'hfjob-log-tail', tail.join('\n')));
  (details as HTMLDetailsElement).open = open;
  return details;
}

/** An <a> for http(s) URLs only; anything else (javascript:, data:, junk) is plain text. */
export function link(url: string, label: string, className: string): HTMLElement {
  if (!isHttp(url)) {
    return el('span', className, label);
  }
  const a = el('a', className, label) as HTMLAnchorElement;
  a.href = url;
  a.target = '_blank';
  a.rel = 'noopener noreferrer';
  return a;
}

function isHttp(url: string): boolean {
  try {
    return ['http:', 'https:'].includes(new URL(url).protocol);
  } catch {
    return false;
  }
}

/** The repo's page on the Hub that serves the job (the job URL's origin). */
function hubUrl(jobUrl: string, repoType: string, repoId: string): string {
  const prefix = REPO_PREFIX.get(repoType);
  if (!isHttp(jobUrl) || !repoId || prefix === undefined) {
    return '';
  }
  const path = repoId.split('/').map(encodeURIComponent).join('/');
  return `${new URL(jobUrl).origin}/${prefix}${path}`;
}

export function duration(seconds: number | null): string {
  const total = Math.max(0, Math.floor(seconds ?? 0));
  const [h, m, s] = [Math.floor(total / 3600), Math.floor((total % 3600) / 60), total % 60];
  const pad = (n: number) => String(n).padStart(2, '0');
  return h ? `${h}h${pad(m)}m${pad(s)}s` : `${m}m${pad(s)}s`;
}

/** Dollars, exactly as hfjobs_magic/money.py `usd` says them: a paid job never reads as free. */
export function money(usd: number | null): string {
  if (usd === null) {
    return 'unknown';
  }
  if (usd === 0) {
    return '$0.00';
  }
  if (usd > 0 && usd < 0.0001) {
    return '< $0.0001';
  }
  return `$${usd.toFixed(usd > 0 && usd < 0.01 ? 4 : 2)}`;
}

/** A timestamp in the reader's local time; `null` when absent or unparsable. */
function moment(value: unknown): string | null {
  const date = new Date(text(value));
  return text(value) && !isNaN(date.getTime()) ? date.toLocaleString() : null;
}

export function el(tag: string, className: string, ...children: (string | Node)[]): HTMLElement {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  node.append(...children); // strings become text nodes, never markup
  return node;
}

export function text(value: unknown): string {
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '';
}

export function num(value: unknown): number | null {
  return typeof value === 'number' && isFinite(value) ? value : null;
}

export function asObject(value: unknown): Json {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : {};
}

export function asList(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/**
 * The output widget. JupyterLab calls renderModel again on the same widget when
 * the kernel sends update_display_data, so each call replaces the whole card
 * (keeping the log section open if the reader opened it).
 */
export class JobCard extends Widget implements IRenderMime.IRenderer {
  private state: ICardState = { logsOpen: false };

  constructor() {
    super();
    this.addClass('hfjob-card-host');
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const card = renderCard(model.data[MIME_TYPE], this.state);
    const details = card.querySelector('details');
    details?.addEventListener('toggle', () => {
      this.state.logsOpen = details.open;
    });
    this.node.replaceChildren(card);
    return Promise.resolve();
  }
}

export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true, // no job data ever reaches innerHTML
  mimeTypes: [MIME_TYPE],
  defaultRank: 0,
  createRenderer: () => new JobCard()
};

const extension: IRenderMime.IExtension = {
  id: 'hfjobs-magic-lab:renderer',
  description: 'Renders %%hfjob records as job cards.',
  rendererFactory,
  rank: 0,
  dataType: 'json'
};

export default extension;

import { Widget } from '@lumino/widgets';

import { IJobsApi, JobsPanel, PANEL_ID, renderJobs, renderRow } from '../src/panel';

/** A row exactly as hfjobs_magic.server.listing.job_row() writes it. */
function job(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: '68f0c0ffee',
    namespace: 'alice',
    name: null,
    stage: 'RUNNING',
    message: null,
    flavor: 'a10g-large',
    created_at: '2026-01-05T10:00:00Z',
    started_at: '2026-01-05T10:00:05Z',
    finished_at: null,
    duration_s: 65,
    usd_per_hour: 1.5,
    cost_usd: 0.027083,
    url: 'https://huggingface.co/jobs/alice/68f0c0ffee',
    notebook: 'train.ipynb',
    path: 'work/train.ipynb',
    cell: '0123456789ab',
    cell_index: 2,
    ...overrides
  };
}

const HOSTILE = '<img src=x onerror="window.__pwned=1">';

describe('renderRow', () => {
  it('shows stage, id link, flavor, duration, cost, notebook and cell', () => {
    const row = renderRow(job());
    expect(row.dataset.jobId).toBe('68f0c0ffee');
    expect(row.dataset.stage).toBe('RUNNING');
    expect(row.querySelector('.hfjob-badge')!.textContent).toBe('RUNNING');
    expect(row.querySelector('.hfjob-badge')!.classList.contains('hfjob-badge-running')).toBe(true);
    const link = row.querySelector('a.hfjobs-job-link') as HTMLAnchorElement;
    expect(link.href).toBe('https://huggingface.co/jobs/alice/68f0c0ffee');
    expect(link.textContent).toBe('68f0c0ffee');
    expect(row.querySelector('.hfjobs-flavor')!.textContent).toBe('a10g-large');
    expect(row.querySelector('.hfjobs-duration')!.textContent).toBe('1m05s');
    expect(row.querySelector('.hfjobs-cost')!.textContent).toBe('$0.03 ($1.50/h)');
    expect(row.querySelector('.hfjobs-where')!.textContent).toBe('train.ipynb · cell 3');
  });

  it('has Cancel while the job runs or waits, and not once it ended', () => {
    expect(renderRow(job()).querySelectorAll('button.hfjobs-cancel')).toHaveLength(1);
    expect(renderRow(job({ stage: 'SCHEDULING' })).querySelectorAll('button.hfjobs-cancel')).toHaveLength(1);
    for (const stage of ['COMPLETED', 'CANCELED', 'ERROR', 'DELETED']) {
      expect(renderRow(job({ stage })).querySelector('.hfjobs-cancel')).toBeNull();
    }
  });

  it('asks to cancel that job, once, without opening the notebook', () => {
    const cancelled: string[] = [];
    const opened: string[] = [];
    const row = renderRow(job(), id => cancelled.push(id), path => opened.push(path));
    const button = row.querySelector('button.hfjobs-cancel') as HTMLButtonElement;
    button.click();
    expect(cancelled).toEqual(['68f0c0ffee']);
    expect(button.disabled).toBe(true);
    expect(opened).toEqual([]);
  });

  it('opens the notebook at its cell on a click, only when the notebook is in the server tree', () => {
    const opened: [string, number | null][] = [];
    const open = (path: string, index: number | null) => opened.push([path, index]);
    renderRow(job(), undefined, open).click();
    renderRow(job({ cell_index: null }), undefined, open).click();
    const outside = renderRow(job({ path: null }), undefined, open);
    outside.click();
    expect(opened).toEqual([
      ['work/train.ipynb', 2],
      ['work/train.ipynb', null]
    ]);
    expect(outside.classList.contains('hfjobs-openable')).toBe(false);
  });

  it('says when a job did not come from a cell, and when it has not started', () => {
    const row = renderRow(job({ notebook: null, path: null, cell: null, cell_index: null, duration_s: null,
      cost_usd: 0, started_at: null, stage: 'SCHEDULING' }));
    expect(row.querySelector('.hfjobs-where')!.textContent).toBe('not started from a notebook cell');
    expect(row.querySelector('.hfjobs-duration')!.textContent).toBe('not started');
    expect(row.querySelector('.hfjobs-cost')!.textContent).toBe('$0.00 ($1.50/h)');
    const unpriced = renderRow(job({ flavor: 'h900x64', usd_per_hour: null, cost_usd: null }));
    expect(unpriced.querySelector('.hfjobs-cost')!.textContent).toBe('unknown');
  });

  it('shows untrusted names, messages and ids as text, and no link for a non-http url', () => {
    const row = renderRow(job({ id: `x${HOSTILE}`, name: HOSTILE, message: HOSTILE, notebook: HOSTILE,
      flavor: HOSTILE, url: 'javascript:alert(1)' }));
    expect(row.querySelector('img')).toBeNull();
    expect(row.querySelector('a')).toBeNull();
    expect(row.querySelector('.hfjobs-name')!.textContent).toBe(HOSTILE);
    expect(row.querySelector('.hfjobs-message')!.textContent).toBe(HOSTILE);
    expect(row.querySelector('.hfjobs-flavor')!.textContent).toBe(HOSTILE);
    expect(row.dataset.jobId).toBe(`x${HOSTILE}`);
  });
});

describe('renderJobs', () => {
  it('one row per job, in the order the server gave', () => {
    const list = renderJobs({ jobs: [job(), job({ id: 'b2', stage: 'COMPLETED' })] });
    const ids = Array.from(list.querySelectorAll('.hfjobs-row')).map(r => (r as HTMLElement).dataset.jobId);
    expect(ids).toEqual(['68f0c0ffee', 'b2']);
  });

  it('says so when there are no jobs, and survives junk', () => {
    expect(renderJobs({ jobs: [] }).textContent).toBe('No jobs yet in this account.');
    expect(renderJobs('nonsense').textContent).toBe('No jobs yet in this account.');
    expect(renderJobs({ jobs: [42, null, { stage: 'RUNNING' }] }).querySelectorAll('.hfjobs-row')).toHaveLength(0);
  });
});

/** A server extension stand-in that answers from a list and records what it was asked. */
class FakeApi implements IJobsApi {
  calls: string[] = [];
  constructor(public answers: (unknown | Error)[]) {}
  list(): Promise<unknown> {
    this.calls.push('list');
    const next = this.answers.length > 1 ? this.answers.shift() : this.answers[0];
    return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
  }
  cancel(jobId: string): Promise<void> {
    this.calls.push(`cancel ${jobId}`);
    return Promise.resolve();
  }
}

describe('JobsPanel', () => {
  it('is the sidebar widget named in DESIGN.md', () => {
    const panel = new JobsPanel(new FakeApi([{ jobs: [] }]), () => Promise.resolve());
    expect(panel.id).toBe(PANEL_ID);
    expect(PANEL_ID).toBe('hfjobs-panel');
    expect(panel.title.label).toBe('HF Jobs');
  });

  it('shows the rows, then an error as one line, keeping the last rows', async () => {
    const api = new FakeApi([{ jobs: [job()] }, new Error('cannot list your jobs: there is no Hugging Face token here.\nmore')]);
    const panel = new JobsPanel(api, () => Promise.resolve());
    await panel.refresh();
    expect(panel.node.querySelectorAll('[data-job-id]')).toHaveLength(1);
    expect(panel.node.querySelector('.hfjobs-error')).toBeNull();
    await panel.refresh();
    const error = panel.node.querySelector('.hfjobs-error')!;
    expect(error.textContent).toBe('cannot list your jobs: there is no Hugging Face token here.');
    expect(panel.node.querySelectorAll('[data-job-id]')).toHaveLength(1);
  });

  it('cancels through the server, then refreshes', async () => {
    const api = new FakeApi([{ jobs: [job()] }, { jobs: [job({ stage: 'CANCELED' })] }]);
    const panel = new JobsPanel(api, () => Promise.resolve());
    await panel.refresh();
    (panel.node.querySelector('button.hfjobs-cancel') as HTMLButtonElement).click();
    await new Promise(resolve => setTimeout(resolve, 0));
    await panel.refresh();
    expect(api.calls.slice(0, 2)).toEqual(['list', 'cancel 68f0c0ffee']);
    expect((panel.node.querySelector('[data-job-id]') as HTMLElement).dataset.stage).toBe('CANCELED');
  });

  it('asks the server only while it is shown, every few seconds', async () => {
    jest.useFakeTimers();
    try {
      const api = new FakeApi([{ jobs: [] }]);
      const panel = new JobsPanel(api, () => Promise.resolve());
      Widget.attach(panel, document.body);
      panel.hide();
      jest.advanceTimersByTime(30_000);
      expect(api.calls).toEqual([]);
      panel.show();
      await panel.refresh(); // the one the panel started on show
      expect(api.calls).toEqual(['list']);
      jest.advanceTimersByTime(5_000);
      await panel.refresh();
      expect(api.calls).toEqual(['list', 'list']);
      panel.hide();
      jest.advanceTimersByTime(30_000);
      expect(api.calls).toEqual(['list', 'list']);
      panel.dispose();
    } finally {
      jest.useRealTimers();
    }
  });
});

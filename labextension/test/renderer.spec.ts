import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';

import extension, { JobCard, MIME_TYPE, duration, money, renderCard, rendererFactory, size } from '../src/renderer';

/** A record exactly as hfjobs_magic.jobs.record.JobRecord.as_json() writes it. */
function record(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: '68f0c0ffee',
    namespace: 'alice',
    url: 'https://huggingface.co/jobs/alice/68f0c0ffee',
    flavor: 'a10g-large',
    stage: 'COMPLETED',
    message: null,
    created_at: '2025-01-02T03:04:00Z',
    started_at: '2025-01-02T03:04:05Z',
    finished_at: '2025-01-02T04:05:06Z',
    duration_s: 3661.2,
    cost_usd: 1.5213,
    usd_per_hour: 1.5,
    notebook: 'train.ipynb',
    cell: 'abc123',
    push: [
      {
        repo_id: 'alice/sft-results',
        repo_type: 'dataset',
        commits: [{ oid: '0123456789abcdef', title: 'Upload dataset', date: '2025-01-02T04:00:00Z' }],
        verified: true,
        checked: true,
        check_error: null,
        reported: [{ files: 2, size: '1.2 kB', ref: 'abc' }],
        failure: null
      }
    ],
    log_lines: 120,
    log_tail: ['step 1 loss 2.0', 'step 2 loss 1.5', 'done'],
    ...overrides
  };
}

function model(data: unknown): IRenderMime.IMimeModel {
  return {
    trusted: false,
    data: { [MIME_TYPE]: data } as IRenderMime.IMimeModel['data'],
    metadata: {},
    setData: () => undefined
  };
}

const q = (card: HTMLElement, selector: string) => card.querySelector(selector) as HTMLElement;

describe('renderCard', () => {
  it('shows every field of a completed job', () => {
    const card = renderCard(record());
    expect(q(card, '.hfjob-badge').textContent).toBe('COMPLETED');
    const jobLink = q(card, 'a.hfjob-job-link') as HTMLAnchorElement;
    expect(jobLink.textContent).toBe('68f0c0ffee');
    expect(jobLink.href).toBe('https://huggingface.co/jobs/alice/68f0c0ffee');
    expect(jobLink.target).toBe('_blank');
    expect(jobLink.rel).toBe('noopener noreferrer');
    expect(q(card, '.hfjob-namespace').textContent).toBe('alice');
    expect(q(card, '.hfjob-field-flavor').textContent).toBe('a10g-large');
    expect(q(card, '.hfjob-field-started').textContent).toBe('1/2/2025, 3:04:05 AM');
    expect(q(card, '.hfjob-field-duration').textContent).toBe('1h01m01s');
    expect(q(card, '.hfjob-field-cost').textContent).toBe('$1.52 ($1.50/h)');
  });

  it('shows push targets with verified marks and commits linked on the Hub', () => {
    const card = renderCard(record());
    expect(q(card, '.hfjob-push-ok').textContent).toBe('✓ verified');
    expect(q(card, '.hfjob-push-line').textContent).toBe(
      'dataset alice/sft-results ✓ verified (the job reported 1 push)'
    );
    const repo = q(card, 'a.hfjob-repo-link') as HTMLAnchorElement;
    expect(repo.href).toBe('https://huggingface.co/datasets/alice/sft-results');
    const oid = q(card, 'a.hfjob-oid') as HTMLAnchorElement;
    expect(oid.textContent).toBe('01234567');
    expect(oid.href).toBe('https://huggingface.co/datasets/alice/sft-results/commit/0123456789abcdef');
    expect(q(card, '.hfjob-commit-title').textContent).toBe('Upload dataset');
    expect(q(card, '.hfjob-commit-date').textContent).toBe('1/2/2025, 4:00:00 AM');
  });

  it('links models and spaces at their own Hub paths', () => {
    const push = [
      { repo_id: 'alice/m', repo_type: 'model', commits: [], verified: true },
      { repo_id: 'alice/s', repo_type: 'space', commits: [], verified: true }
    ];
    const links = renderCard(record({ push })).querySelectorAll('a.hfjob-repo-link');
    expect(Array.from(links, a => (a as HTMLAnchorElement).href)).toEqual([
      'https://huggingface.co/alice/m',
      'https://huggingface.co/spaces/alice/s'
    ]);
  });

  it.each([
    ['RUNNING', {}, 'wait', '… nothing yet'],
    ['COMPLETED', { checked: true }, 'warn', '⚠ nothing was pushed there: the results are lost'],
    ['COMPLETED', {}, 'wait', 'not verified'],
    ['RUNNING', { check_error: '403 Forbidden' }, 'warn', '⚠ not verified: 403 Forbidden'],
    ['ERROR', { failure: 'HTTP 500 from the Hub' }, 'fail', '✗ push failed: HTTP 500 from the Hub'],
    ['COMPLETED', { verified: true }, 'wait', 'not verified']
  ])('a %s job whose target is %j is %s: %s', (stage, target, level, label) => {
    const push = [{ repo_id: 'alice/r', repo_type: 'model', commits: [], verified: false, ...target }];
    const card = renderCard(record({ stage, push }));
    expect(q(card, `.hfjob-push-${level}`).textContent).toBe(label);
    expect(card.querySelectorAll('.hfjob-push-state')).toHaveLength(1);
    expect(card.querySelector('.hfjob-commits')).toBeNull();
    expect(card.querySelector('.hfjob-push-reported')).toBeNull();
  });

  it('shows an S3 target as its URL, with its objects, unlinked', () => {
    const push = [
      {
        repo_id: 's3://bucket/run-1',
        repo_type: 's3',
        commits: [{ oid: 'etag1234567', title: 'run-1/model.bin', date: '2025-01-02T04:00:00Z' }],
        verified: true,
        checked: true
      }
    ];
    const card = renderCard(record({ push }));
    expect(q(card, '.hfjob-push-line').textContent).toBe('s3://bucket/run-1 ✓ verified');
    expect(card.querySelector('.hfjob-repo-type')).toBeNull();
    expect(card.querySelector('.hfjob-push a')).toBeNull();
    expect(q(card, '.hfjob-oid').textContent).toBe('etag1234');
    expect(q(card, '.hfjob-commit-title').textContent).toBe('run-1/model.bin');
  });

  it('puts the log tail in a collapsed section', () => {
    const details = q(renderCard(record()), 'details.hfjob-logs') as HTMLDetailsElement;
    expect(details.open).toBe(false);
    expect(details.querySelector('summary')!.textContent).toBe('Log: last 3 of 120 lines');
    expect(q(details, 'pre').textContent).toBe('step 1 loss 2.0\nstep 2 loss 1.5\ndone');
    expect((q(renderCard(record(), { logsOpen: true }), 'details') as HTMLDetailsElement).open).toBe(true);
  });

  it('shows the message of a failed job', () => {
    const card = renderCard(record({ stage: 'ERROR', message: 'Job timed out after 30m' }));
    expect(q(card, '.hfjob-message').textContent).toBe('Job timed out after 30m');
  });

  it.each([
    ['SCHEDULING', 'hfjob-badge-scheduling'],
    ['RUNNING', 'hfjob-badge-running'],
    ['COMPLETED', 'hfjob-badge-completed'],
    ['CANCELED', 'hfjob-badge-canceled'],
    ['ERROR', 'hfjob-badge-error'],
    ['DELETED', 'hfjob-badge-deleted'],
    ['EXPLODED"><b>', 'hfjob-badge-unknown']
  ])('colours the %s badge', (stage, className) => {
    const card = renderCard(record({ stage }));
    const badge = q(card, '.hfjob-badge');
    expect(badge.textContent).toBe(stage);
    expect(Array.from(badge.classList)).toEqual(['hfjob-badge', className]);
    expect(card.dataset.stage).toBe(stage);
    expect(card.querySelector('b')).toBeNull();
  });

  it('renders a just-submitted job with only the required fields', () => {
    const card = renderCard({ id: 'j1', namespace: 'alice', url: 'https://hub/jobs/alice/j1', flavor: 'cpu-basic', stage: 'SCHEDULING' });
    expect(q(card, '.hfjob-badge').textContent).toBe('SCHEDULING');
    expect(q(card, '.hfjob-field-started').textContent).toBe('not yet');
    expect(card.querySelector('.hfjob-field-duration')).toBeNull(); // no start, no duration
    expect(q(card, '.hfjob-field-cost').textContent).toBe('unknown');
    expect(card.querySelector('.hfjob-message')).toBeNull();
    expect(card.querySelector('.hfjob-push')).toBeNull();
    expect(card.querySelector('details')).toBeNull();
  });

  it('renders malformed records as what they are, field by field', () => {
    const empty = 'UNKNOWNHF Job unknown idFlavorunknownStartednot yetCostunknown';  // no start, no duration
    for (const data of [null, 42, 'text', [], {}]) {
      expect(renderCard(data).textContent).toBe(empty);
    }
    const operating = { metrics: { cpu_pct: 3, peak: 'x' }, notices: [null, 4], schedule: { schedule: 7, next_runs: 'x' } };
    const operatingText = renderCard(operating).textContent as string;
    expect(operatingText.startsWith(empty)).toBe(true);
    expect(operatingText).toContain('Scheduled 7 (UTC); next runs: unknown');
    expect(operatingText).toContain('CPU 3% (peak 0%)');
    const wrongTypes = renderCard({ push: 'x', log_tail: 'y', stage: 7 });
    expect(wrongTypes.textContent).toBe('7HF Job unknown idFlavorunknownStartednot yetCostunknown');
    expect(wrongTypes.querySelector('details')).toBeNull();
    const card = renderCard({});
    expect(q(card, '.hfjob-badge').textContent).toBe('UNKNOWN');
    expect(q(card, '.hfjob-job-link').textContent).toBe('unknown id');
    expect(q(card, '.hfjob-field-flavor').textContent).toBe('unknown');
    expect(q(renderCard({ started_at: 'not a date' }), '.hfjob-field-started').textContent).toBe('not yet');
    const odd = { push: [{ repo_id: 'a/b', repo_type: 'constructor', commits: [{ oid: 7 }] }], url: 'https://h/j' };
    const oddCard = renderCard(odd);
    expect(Array.from(oddCard.querySelectorAll('.hfjob-push-line'), e => e.textContent)).toEqual(['a/b … nothing yet']);
    expect(q(oddCard, '.hfjob-oid').textContent).toBe('7');
    expect(oddCard.querySelector('.hfjob-push a')).toBeNull(); // an unknown repo type gets no Hub link
  });
});

describe('escaping', () => {
  const evil = '<img src=x onerror="window.pwned=1">';

  it('renders markup in log lines, titles, messages and ids as text', () => {
    const card = renderCard(
      record({
        id: evil,
        namespace: evil,
        flavor: evil,
        message: `<script>window.pwned=1</script>`,
        push: [{ repo_id: evil, repo_type: 'dataset', commits: [{ oid: evil, title: evil, date: evil }], verified: true }],
        log_tail: [evil, '<script>alert(1)</script>']
      })
    );
    document.body.replaceChildren(card);
    expect(card.querySelector('img')).toBeNull();
    expect(card.querySelector('script')).toBeNull();
    expect(q(card, 'pre').textContent).toBe(`${evil}\n<script>alert(1)</script>`);
    expect(q(card, '.hfjob-job-link').textContent).toBe(evil);
    expect(q(card, '.hfjob-commit-title').textContent).toBe(evil);
    expect(q(card, '.hfjob-message').textContent).toBe('<script>window.pwned=1</script>');
    expect((window as unknown as { pwned?: number }).pwned).toBeUndefined();
  });

  it.each(['javascript:alert(1)', 'data:text/html,<script>alert(1)</script>', 'ftp://host/x', 'jobs/alice/1', ''])(
    'shows the non-http URL %j as text, not a link',
    url => {
      const card = renderCard(record({ url }));
      expect(card.querySelector('a')).toBeNull();
      expect(q(card, 'span.hfjob-job-link').textContent).toBe('68f0c0ffee');
      expect(q(card, 'span.hfjob-repo-link').textContent).toBe('alice/sft-results');
    }
  );

  it('encodes repo ids and commit ids into Hub links', () => {
    const push = [{ repo_id: 'a/b?c#d', repo_type: 'model', commits: [{ oid: '../x?y', title: 't' }], verified: true }];
    const card = renderCard(record({ push }));
    expect((q(card, 'a.hfjob-repo-link') as HTMLAnchorElement).href).toBe('https://huggingface.co/a/b%3Fc%23d');
    expect((q(card, 'a.hfjob-oid') as HTMLAnchorElement).href).toBe(
      'https://huggingface.co/a/b%3Fc%23d/commit/..%2Fx%3Fy'
    );
  });
});

describe('JobCard widget', () => {
  it('re-renders in place when the display is updated', async () => {
    const widget = new JobCard();
    await widget.renderModel(model(record({ stage: 'RUNNING', log_tail: ['a'] })));
    expect(widget.node.querySelectorAll('.hfjob-card')).toHaveLength(1);
    expect(q(widget.node, '.hfjob-badge').textContent).toBe('RUNNING');

    const details = q(widget.node, 'details') as HTMLDetailsElement;
    details.open = true;
    details.dispatchEvent(new Event('toggle'));

    await widget.renderModel(model(record({ stage: 'COMPLETED', log_tail: ['a', 'b'] })));
    expect(widget.node.querySelectorAll('.hfjob-card')).toHaveLength(1);
    expect(q(widget.node, '.hfjob-badge').textContent).toBe('COMPLETED');
    expect(q(widget.node, 'pre').textContent).toBe('a\nb');
    expect((q(widget.node, 'details') as HTMLDetailsElement).open).toBe(true);
  });

  it('is registered for the MIME type at rank 0 as a safe renderer', () => {
    expect(extension.rendererFactory).toBe(rendererFactory);
    expect(extension.rank).toBe(0);
    expect(extension.dataType).toBe('json');
    expect(rendererFactory.mimeTypes).toEqual([MIME_TYPE]);
    expect(rendererFactory.safe).toBe(true);
    expect(rendererFactory.createRenderer({} as IRenderMime.IRendererOptions)).toBeInstanceOf(JobCard);
  });
});

describe('formatting', () => {
  it.each([
    [null, '0m00s'],
    [0, '0m00s'],
    [59.9, '0m59s'],
    [61, '1m01s'],
    [3600, '1h00m00s'],
    [-5, '0m00s']
  ])('duration(%p) is %s', (seconds, expected) => {
    expect(duration(seconds)).toBe(expected);
  });

  it.each([
    [null, 'unknown'],
    [0, '$0.00'],
    [0.00001, '< $0.0001'],
    [0.00009999, '< $0.0001'],
    [0.0001, '$0.0001'],
    [0.0042, '$0.0042'],
    [0.01234, '$0.01'],
    [0.75, '$0.75'],
    [12.345, '$12.35'],
    [12.5, '$12.50']
  ])('money(%p) is %s', (usd, expected) => {
    expect(money(usd)).toBe(expected);
  });
});

describe('operating a job', () => {
  const metrics = {
    cpu_pct: 87.4,
    memory_bytes: 1_234_000_000,
    memory_total_bytes: 16_000_000_000,
    gpu_util_pct: 2,
    gpu_memory_bytes: 500_000_000,
    gpu_memory_total_bytes: 24_000_000_000,
    peak: { cpu_pct: 99, memory_bytes: 2_000_000_000, gpu_util_pct: 91 },
    idle_gpu_s: 125,
    idle_gpu_total_s: 300
  };

  it('shows the latest metrics and their peaks, with GPU rows only for a GPU', () => {
    const card = renderCard(record({ stage: 'RUNNING', metrics }));
    expect(q(card, '[data-metric="cpu_pct"]').textContent).toBe('CPU 87% (peak 99%)');
    expect(q(card, '[data-metric="memory_bytes"]').textContent).toBe('Memory 1.2 GB / 16.0 GB (peak 2.0 GB)');
    expect(q(card, '[data-metric="gpu_util_pct"]').textContent).toBe('GPU 2% (peak 91%)');
    expect(q(card, '[data-metric="idle_gpu_s"]').textContent).toBe('GPU idle 2m05s');
    const cpuOnly = renderCard(record({ metrics: { cpu_pct: 5, memory_bytes: 1000, memory_total_bytes: 2000, peak: {} } }));
    expect(cpuOnly.querySelector('[data-metric="gpu_util_pct"]')).toBeNull();
    expect(renderCard(record()).querySelector('.hfjob-metrics')).toBeNull();
  });

  it('shows notices and a schedule as text', () => {
    const card = renderCard(
      record({
        stage: 'SCHEDULED',
        notices: [{ kind: 'idle_gpu', text: '<b>The GPU has been idle</b>' }],
        schedule: { id: 's1', schedule: '@daily', next_runs: ['2025-01-03T00:00:00Z'] }
      })
    );
    const notice = q(card, '.hfjob-notice');
    expect(notice.dataset.notice).toBe('idle_gpu');
    expect(notice.textContent).toBe('⚠ <b>The GPU has been idle</b>');
    expect(notice.querySelector('b')).toBeNull();
    expect(q(card, '.hfjob-schedule').textContent).toContain('Scheduled @daily (UTC); next runs: ');
    expect(q(card, '.hfjob-badge').classList.contains('hfjob-badge-scheduled')).toBe(true);
  });

  it.each([
    [null, '0 B'],
    [999, '999 B'],
    [1_500, '1.5 KB'],
    [24_000_000_000, '24.0 GB']
  ])('size(%p) is %s', (bytes, expected) => {
    expect(size(bytes)).toBe(expected);
  });
});

import { DEFAULTS, magicLine, quote, withMagic } from '../src/commands';

describe('magicLine', () => {
  it('turns the default settings into flags', () => {
    expect(magicLine(DEFAULTS)).toBe('%%hfjob --flavor cpu-basic --timeout 30m --yes');
  });

  it('adds the push target with its repo type, and extra flags as written', () => {
    const line = magicLine({
      ...DEFAULTS,
      flavor: 'a10g-large',
      timeout: '2h',
      push: 'alice/results',
      repoType: 'dataset',
      extraFlags: ' --secrets WANDB_API_KEY --with torch '
    });
    expect(line).toBe(
      '%%hfjob --flavor a10g-large --timeout 2h --push alice/results --repo-type dataset --yes ' +
        '--secrets WANDB_API_KEY --with torch'
    );
  });

  it('leaves out empty settings and --yes when consent is off', () => {
    expect(magicLine({ ...DEFAULTS, flavor: ' ', timeout: '', yes: false })).toBe('%%hfjob');
  });

  it('quotes values with spaces or quotes', () => {
    expect(quote('s3://bucket/my prefix')).toBe("'s3://bucket/my prefix'");
    expect(quote("it's")).toBe(`'it'"'"'s'`);
    expect(quote('alice/sft-results')).toBe('alice/sft-results');
  });
});

describe('withMagic', () => {
  it('puts the magic on top of a plain cell', () => {
    expect(withMagic('print(1)\n', DEFAULTS)).toBe('%%hfjob --flavor cpu-basic --timeout 30m --yes\nprint(1)\n');
  });

  it('leaves a cell that already is a job cell alone', () => {
    for (const source of ['%%hfjob --flavor t4-small\nx = 1', '\n  \n%%hfjob\nx = 1', '%%hfjob']) {
      expect(withMagic(source, DEFAULTS)).toBe(source);
    }
  });

  it('does not mistake another magic for its own', () => {
    expect(withMagic('%%hfjobs\nx', DEFAULTS)).toBe(`${magicLine(DEFAULTS)}\n%%hfjobs\nx`);
    expect(withMagic('# %%hfjob\nx', DEFAULTS)).toBe(`${magicLine(DEFAULTS)}\n# %%hfjob\nx`);
  });
});

"""Secret masking: whole values and every 8+ character piece disappear from job output."""

from hfjobs_magic.mask import MASK, SecretMasker

CANARY = "hf_CanaryTokenDoNotLeak0123456789abcdef"


def test_whole_value_is_masked():
    masker = SecretMasker([CANARY])
    assert masker.mask(f"token={CANARY}!") == f"token={MASK}!"


def test_pieces_of_eight_or_more_are_masked_shorter_ones_are_not():
    masker = SecretMasker([CANARY])
    line = f"head {CANARY[:8]} mid {CANARY[10:30]} tail {CANARY[-9:]} short {CANARY[:7]}"
    masked = masker.mask(line)
    assert CANARY[:8] not in masked and CANARY[10:30] not in masked and CANARY[-9:] not in masked
    assert masked.count(MASK) == 3
    assert CANARY[:7] in masked


def test_short_secrets_and_clean_batches_pass_through_unchanged():
    masker = SecretMasker(["short", ""])
    assert not masker
    lines = ["nothing here", "short is not masked"]
    assert masker.mask_lines(lines) is lines


def test_batch_masking_only_touches_lines_with_secrets():
    masker = SecretMasker([CANARY, "another-secret-value"])
    out = masker.mask_lines(["a", f"x{CANARY}y", "another-secret-value", "b"])
    assert out == ["a", f"x{MASK}y", MASK, "b"]

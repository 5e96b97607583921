"""How long does the pre-submission checklist take when every Hub answer takes 100 ms?

    .venv/bin/python benchmarks/checklist.py

The checklist asks the Hub for whoami, the hardware list and one repo_info per
(repo, type) it must check, all at once under one deadline: it should cost about one
round trip, not one per look-up. Prints the checklist's wall time next to one round
trip and next to the same look-ups made one after the other, and their ratios, from
one run. Asserts nothing (tests never assert on wall time).
"""

from __future__ import annotations

import os
import statistics
import textwrap
import time

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.pop("HF_TOKEN", None)

from hfjobs_magic.cell.spec import build_spec, parse_line  # noqa: E402
from hfjobs_magic.checks import collect_facts, context_for, run_checks  # noqa: E402
from hfjobs_magic.remote.hub import HubClient  # noqa: E402
from hfjobs_magic.sandbox import Sandbox  # noqa: E402

DELAY_S = 0.1
RUNS = 5
LINE = "--flavor a10g-large --timeout 2h --push alice/bench-model"
CELL = textwrap.dedent("""
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments
    dataset = load_dataset("imdb", split="train[:1%]")
    model = AutoModelForCausalLM.from_pretrained("sshleifer/tiny-gpt2")
    args = TrainingArguments(output_dir="out", push_to_hub=True, hub_model_id="alice/bench-model")
    trainer = Trainer(model=model, args=args, train_dataset=dataset)
    trainer.train()
    trainer.push_to_hub()
    dataset.push_to_hub("alice/bench-eval")
""").lstrip()


def checklist_once(sb: Sandbox) -> float:
    """A fresh client each time, so whoami and hardware are really fetched (no session cache)."""
    ctx = context_for(CELL, build_spec(parse_line(LINE)), client=HubClient(sb.endpoint, sb.token))
    started = time.perf_counter()
    run_checks(ctx)
    return time.perf_counter() - started


def lookups_of(sb: Sandbox) -> list[tuple[str, str]]:
    ctx = context_for(CELL, build_spec(parse_line(LINE)), client=HubClient(sb.endpoint, sb.token))
    return list(collect_facts(ctx).found.repos)


def sequential_once(sb: Sandbox, repos: list[tuple[str, str]]) -> float:
    """The same look-ups, one after the other."""
    client = HubClient(sb.endpoint, sb.token)
    _ = client.api
    started = time.perf_counter()
    client.whoami()
    client.hardware()
    for repo_id, repo_type in repos:
        client.repo_info(repo_id, repo_type)
    return time.perf_counter() - started


def round_trip_once(sb: Sandbox) -> float:
    client = HubClient(sb.endpoint, sb.token)
    _ = client.api
    started = time.perf_counter()
    client.api.whoami()
    return time.perf_counter() - started


def median_ms(fn, *args) -> float:
    return statistics.median(fn(*args) for _ in range(RUNS)) * 1000


def report(label: str, value: str, note: str = "") -> None:
    print(f"{label:<58} {value:>10}   {note}")


def main() -> None:
    with Sandbox() as sb:
        from huggingface_hub import HfApi

        HfApi(endpoint=sb.endpoint, token=sb.token).create_repo("alice/bench-model", exist_ok=True)
        checklist_once(sb)  # warm-up: imports, connection pool
        repos = lookups_of(sb)
        pure = median_ms(checklist_once, sb)
        sb.faults.delay(DELAY_S)
        trip = median_ms(round_trip_once, sb)
        sequential = median_ms(sequential_once, sb, repos)
        checklist = median_ms(checklist_once, sb)
    n = 2 + len(repos)
    print(f"checklist of a Trainer + datasets cell; {n} Hub look-ups (whoami, hardware, {len(repos)} repo_info); "
          f"median of {RUNS} runs")
    report("checklist, no added delay (local sandbox)", f"{pure:.0f} ms", "target well under 1000 ms")
    report(f"one round trip (whoami) with {DELAY_S * 1000:.0f} ms delay", f"{trip:.0f} ms")
    report(f"the {n} look-ups one after the other", f"{sequential:.0f} ms")
    report("the checklist (look-ups in parallel)", f"{checklist:.0f} ms")
    report("checklist / one round trip", f"{checklist / trip:.2f}x", "target about 1x (< 1.5x)")
    report("sequential look-ups / checklist", f"{sequential / checklist:.2f}x", f"ideal {n}x")


if __name__ == "__main__":
    main()

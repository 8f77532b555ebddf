"""Recovery rate and parse time of the model-output corpora: `python -m bench.parse_corpus [--repeat N] [--corpus C]`
(`--only GLOB` measures some held-out files, such as one batch: `--only '*_3.json'`)."""
# Each scripted answer text is one sample, parsed directly (no server). It is recoverable when it is the
# last answer of a case that must succeed; every other text must be refused. The main corpus pins the
# recovery rules; the held-out one (tests/corpus/heldout/) was written from the documented rules before the
# code that handles it and is never tuned to, so its rate is the honest one.
from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections import defaultdict

from backend.llm.parse import ANALYSIS, EXPLANATION, SUBTOPICS, UnusableAnswer, parse_model_output
from bench.harness import ratio_line
from tests.corpus import CORPUS_DIR, HELDOUT_DIR, load_cases, text_of

OPERATIONS = {op.source: op for op in (ANALYSIS, SUBTOPICS, EXPLANATION)}
TARGET = 0.99  # of the recoverable held-out answers, recovered exactly


def samples(cases):
    """(case, text, truncated, expected data or None) for every answer text the parser would see."""
    for case in cases:
        for index, answer in enumerate(case.answers):
            text = text_of(answer)
            if text is None or not text.strip():
                continue  # blocked and empty candidates are refused before any parsing
            last = index == len(case.answers) - 1
            expected = case.data if last and case.recovered else None
            yield case, text, answer.get("finish_reason") == "MAX_TOKENS", expected


def outcome(case, text, truncated):
    """The parsed result as the endpoint would return it, or None when refused (a 502)."""
    try:
        result = parse_model_output(text, OPERATIONS[case.source], context=case.request, truncated=truncated)
    except UnusableAnswer:
        return None
    return {**result.value.model_dump(), "partial": result.partial}


def percentile(values, share):
    """The nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def measure(name: str, cases, repeat: int) -> tuple[int, int]:
    """Print one corpus's figures; return (recovered exactly, recoverable)."""
    recoverable = recovered = refusable = refused = crashed = 0
    by_tag = defaultdict(lambda: [0, 0])
    times, sizes, misses = [], [], []
    for case, text, truncated, expected in samples(cases):
        try:
            got = outcome(case, text, truncated)
        except Exception as exc:  # anything but UnusableAnswer would be a 500 at the endpoint
            crashed += 1
            misses.append(f"{case.source}:{case.id} (CRASH {type(exc).__name__}: would be a 500)")
            continue
        if expected is not None:
            recoverable += 1
            hit = got == expected
            recovered += hit
            for tag in case.tags:
                by_tag[tag][0] += 1
                by_tag[tag][1] += hit
            if not hit:
                misses.append(f"{case.source}:{case.id} " + ("(refused, should be recovered)" if got is None
                                                             else "(recovered, but not as expected)"))
        else:
            refusable += 1
            refused += got is None
            if got is not None:
                misses.append(f"{case.source}:{case.id} (should be refused)")
        for _ in range(repeat):
            started = time.perf_counter()
            outcome(case, text, truncated)
            times.append(time.perf_counter() - started)
        sizes.append(len(text))

    print(f"{name}: {len(cases)} cases, {len(sizes)} answer texts parsed "
          f"(median {statistics.median(sizes):.0f} chars, max {max(sizes)})")
    for tag, (total, hits) in sorted(by_tag.items()):
        print(f"  cases tagged {tag:<18} {hits}/{total} recoverable texts recovered exactly")
    print(f"  correctly refused (unusable texts): {refused}/{refusable}; crashes (would be 500): {crashed}")
    for miss in misses:
        print(f"  MISS {miss}")
    if times:
        print(f"  parse time over {len(times)} parses: p50 {percentile(times, 0.5) * 1e3:.3f} ms, "
              f"p99 {percentile(times, 0.99) * 1e3:.3f} ms, max {max(times) * 1e3:.3f} ms")
    print(f"  recovery rate (recoverable texts recovered exactly): {recovered}/{recoverable} = "
          f"{100 * recovered / max(recoverable, 1):.1f}%")
    return recovered, recoverable


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=50, help="parses per text for the timings")
    parser.add_argument("--corpus", choices=("main", "heldout", "both"), default="both")
    parser.add_argument("--only", default="*.json", metavar="GLOB",
                        help="held-out files to measure, such as '*_3.json' for one batch")
    args = parser.parse_args(argv)
    logging.getLogger("backend.llm").setLevel(logging.WARNING)

    if args.corpus in ("main", "both"):
        hits, total = measure("main corpus", load_cases(CORPUS_DIR), args.repeat)
        print(ratio_line("parse_corpus_recovery", hits / max(total, 1), f">= {TARGET}", hits / max(total, 1) >= TARGET))
    if args.corpus in ("heldout", "both"):
        name = "held-out corpus" + ("" if args.only == "*.json" else f" ({args.only})")
        hits, total = measure(name, load_cases(HELDOUT_DIR, args.only), args.repeat)
        rate = hits / max(total, 1)
        print(ratio_line("parse_corpus_heldout_recovery", rate, f">= {TARGET}", rate >= TARGET))


if __name__ == "__main__":
    main()

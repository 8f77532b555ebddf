"""Recovery rate and parse time of the model-output corpus: `python -m bench.parse_corpus [--repeat N]`."""
# Each scripted answer text is one sample, parsed directly (no server). It is recoverable when it is the
# last answer of a case that must succeed; every other text must be refused.
from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections import defaultdict

from backend.llm.parse import ANALYSIS, EXPLANATION, SUBTOPICS, UnusableAnswer, parse_model_output
from tests.corpus import load_cases, text_of

OPERATIONS = {op.source: op for op in (ANALYSIS, SUBTOPICS, EXPLANATION)}


def samples():
    """(case, text, truncated, expected data or None) for every answer text the parser would see."""
    for case in load_cases():
        for index, answer in enumerate(case.answers):
            text = text_of(answer)
            if text is None or not text.strip():
                continue  # blocked and empty candidates are refused before any parsing
            last = index == len(case.answers) - 1
            expected = case.data if last and case.recovered else None
            yield case, text, answer.get("finish_reason") == "MAX_TOKENS", expected


def outcome(case, text, truncated):
    """The parsed result as the endpoint would return it, or None when refused."""
    try:
        result = parse_model_output(text, OPERATIONS[case.source], context=case.request, truncated=truncated)
    except UnusableAnswer:
        return None
    return {**result.value.model_dump(), "partial": result.partial}


def percentile(values, share):
    """The nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=50, help="parses per text for the timings")
    args = parser.parse_args(argv)
    logging.getLogger("backend.llm").setLevel(logging.WARNING)

    recoverable = recovered = refusable = refused = 0
    by_tag = defaultdict(lambda: [0, 0])
    times, sizes = [], []
    misses = []
    for case, text, truncated, expected in samples():
        got = outcome(case, text, truncated)
        if expected is not None:
            recoverable += 1
            hit = got == expected
            recovered += hit
            for tag in case.tags:
                by_tag[tag][0] += 1
                by_tag[tag][1] += hit
            if not hit:
                misses.append(f"{case.source}:{case.id}")
        else:
            refusable += 1
            refused += got is None
            if got is not None:
                misses.append(f"{case.source}:{case.id} (should be refused)")
        for _ in range(args.repeat):
            started = time.perf_counter()
            outcome(case, text, truncated)
            times.append(time.perf_counter() - started)
        sizes.append(len(text))

    print(f"corpus: {len(load_cases())} cases, {len(sizes)} answer texts parsed "
          f"(median {statistics.median(sizes):.0f} chars, max {max(sizes)})")
    for tag, (total, hits) in sorted(by_tag.items()):
        print(f"  cases tagged {tag:<16} {hits}/{total} recoverable texts recovered exactly")
    print(f"correctly refused (unusable texts): {refused}/{refusable}")
    for miss in misses:
        print(f"  MISS {miss}")
    print(f"parse time over {len(times)} parses: p50 {percentile(times, 0.5) * 1e3:.3f} ms, "
          f"p99 {percentile(times, 0.99) * 1e3:.3f} ms, max {max(times) * 1e3:.3f} ms")
    print(f"recovery rate (recoverable texts recovered exactly): {recovered}/{recoverable} = "
          f"{100 * recovered / recoverable:.1f}%")


if __name__ == "__main__":
    main()

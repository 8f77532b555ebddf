"""Locust load test over the five AI endpoints, with Zipf-distributed repeats, failing on error ratio or p95."""
# Run headless against any deployment:
#   locust -f bench/locustfile.py --headless -u 40 -r 20 -t 60s --host https://ai.example.com \
#          --api-key KEY [--max-error-ratio 0.01] [--max-p95-ms 3000]
# Users wait 1-3 s between requests (about 30 a minute each), under the default RATE_LIMIT_AI of 60/minute per user.
from __future__ import annotations

import array
import collections
import functools
import io
import itertools
import math
import os
import random
import wave

from locust import HttpUser, between, events, task

LEVELS = ["A1", "A2", "B1", "B2", "C1", "C2"]
OPENINGS = ["Yesterday I go to the market", "My brother have two dogs", "Last summer we was in Spain",
            "I am agree with this opinion", "She don't like the coffee", "When I was child I play football",
            "In my city there is many park", "I have went to London last year"]
MIDDLES = ["and I buyed some apples", "because the weather were nice", "but nobody tell me the time",
           "so I must to study more", "although it was raining a lot", "and everybody were very happy"]
CLOSINGS = ["It was a good day.", "I hope to do it again.", "This is my favourite memory.",
            "Next time I will goes earlier.", "My teacher say it is important."]
TOPICS = ["Travel", "Food and cooking", "Job interviews", "Health", "Technology", "Environment", "Sports",
          "Music", "Family", "Shopping", "Education", "Holidays", "Movies", "Science", "History", "Money"]
SUBTOPICS = ["Vocabulary", "Useful phrases", "Past tense stories", "Asking questions", "Giving opinions",
             "Polite requests", "Comparing things", "Future plans"]
SENTENCES = ["The quick brown fox jumps.", "She sells sea shells.", "It is a sunny day.",
             "I would like a cup of tea.", "Where is the train station?", "My name is Alex."]
COUNTERS: collections.Counter = collections.Counter()  # X-Cache answers seen, per endpoint, in this process


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--api-key", env_var="LOCUST_API_KEY", default="", help="client key (X-API-Key)")
    parser.add_argument("--max-error-ratio", env_var="LOCUST_MAX_ERROR_RATIO", type=float, default=0.01,
                        help="fail the run when the share of failed requests is above this")
    parser.add_argument("--max-p95-ms", env_var="LOCUST_MAX_P95_MS", type=float, default=3000,
                        help="fail the run when the overall 95th percentile response time is above this")
    parser.add_argument("--distinct-texts", env_var="LOCUST_DISTINCT_TEXTS", type=int, default=400,
                        help="size of each payload pool; which entries repeat follows a Zipf law")
    parser.add_argument("--zipf-s", env_var="LOCUST_ZIPF_S", type=float, default=1.1,
                        help="Zipf exponent: higher means fewer, more popular repeats (more cache hits)")
    parser.add_argument("--seed", env_var="LOCUST_SEED", type=int, default=None, help="for repeatable payload mixes")


class Zipf:
    """Draw from a pool where the k-th entry is chosen with probability proportional to 1 / k**s."""

    def __init__(self, pool: list, s: float, rng: random.Random):
        self.pool, self.rng = pool, rng
        self.cumulative = list(itertools.accumulate(1 / (k ** s) for k in range(1, len(pool) + 1)))

    def draw(self):
        return self.rng.choices(self.pool, cum_weights=self.cumulative)[0]


def learner_texts(count: int) -> list[str]:
    """Distinct plausible learner texts (distinct texts are distinct cache entries)."""
    combos = itertools.product(OPENINGS, MIDDLES, CLOSINGS)
    return [f"{a} {b}. {c}" + (f" (entry {k})" if k >= len(OPENINGS) * len(MIDDLES) * len(CLOSINGS) else "")
            for k, (a, b, c) in zip(range(count), itertools.cycle(combos))]


@functools.lru_cache(maxsize=None)
def wav_clip(index: int, rate: int = 16000) -> bytes:
    """A short 16-bit mono WAV: one to three tone 'utterances' separated by silence, distinct per index."""
    # Cached: synthesizing clips per user would stall gevent's loop and show up as response time.
    samples = array.array("h", [0] * int(0.2 * rate))
    for segment in range(1 + index % 3):
        freq = 160 + 7 * index + 40 * segment
        samples.extend(int(12000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(int(0.7 * rate)))
        samples.extend([0] * int(0.5 * rate))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


class Learner(HttpUser):
    """One app user: mostly writing feedback, some lesson content, a little speech."""

    wait_time = between(1, 3)
    _ids = itertools.count()

    def on_start(self) -> None:
        options = self.environment.parsed_options
        seed = options.seed if options is not None else None
        self.rng = random.Random(None if seed is None else seed + next(self._ids))
        size = options.distinct_texts if options is not None else 400
        s = options.zipf_s if options is not None else 1.1
        self.texts = Zipf(learner_texts(size), s, self.rng)
        self.topics = Zipf([f"{t}" if i < len(TOPICS) else f"{t} {i}" for i, t in
                            zip(range(size // 4 or 1), itertools.cycle(TOPICS))], s, self.rng)
        self.pairs = Zipf([(t, st) for t, st in itertools.product(TOPICS, SUBTOPICS)], s, self.rng)
        self.clips = Zipf([(wav_clip(i), SENTENCES[i % len(SENTENCES)]) for i in range(12)], s, self.rng)
        key = options.api_key if options is not None else os.environ.get("LOCUST_API_KEY", "")
        self.client.headers.update({"X-API-Key": key, "X-User-ID": f"locust-{self.rng.randrange(10**9)}"})

    def _count(self, name: str, response) -> None:
        COUNTERS[(name, response.headers.get("X-Cache", "-"))] += 1

    @task(5)
    def analyze(self) -> None:
        body = {"text": self.texts.draw(), "level": self.rng.choice(LEVELS)}
        if self.rng.random() < 0.3:
            body["native_language"] = self.rng.choice(["es", "de", "pt", "ja"])
        with self.client.post("/api/analyze", json=body, catch_response=True) as response:
            self._count("analyze", response)

    @task(2)
    def create_subtopics(self) -> None:
        body = {"topic": self.topics.draw(), "count": self.rng.choice([3, 4, 5, 6, 8])}
        with self.client.post("/api/create_subtopics", json=body, catch_response=True) as response:
            self._count("create_subtopics", response)

    @task(2)
    def explanation(self) -> None:
        topic, subtopic = self.pairs.draw()
        body = {"topic": topic, "subtopic": subtopic, "level": self.rng.choice(LEVELS)}
        with self.client.post("/api/explanation", json=body, catch_response=True) as response:
            self._count("explanation", response)

    @task(1)
    def transcribe(self) -> None:
        audio, _ = self.clips.draw()
        files = {"audio": ("clip.wav", audio, "audio/wav")}
        with self.client.post("/api/transcribe", files=files, data={"language": "en-US"},
                              catch_response=True) as response:
            self._count("transcribe", response)

    @task(1)
    def pronunciation(self) -> None:
        audio, sentence = self.clips.draw()
        files = {"audio": ("clip.wav", audio, "audio/wav")}
        with self.client.post("/api/pronunciation", files=files, data={"reference_text": sentence,
                                                                      "language": "en-US"},
                              catch_response=True) as response:
            self._count("pronunciation", response)


@events.quitting.add_listener
def _verdict(environment, **_kwargs) -> None:
    """Exit 1 when the error ratio or the p95 is over its threshold, and say which."""
    total = environment.stats.total
    options = environment.parsed_options
    max_errors = options.max_error_ratio if options is not None else 0.01
    max_p95 = options.max_p95_ms if options is not None else 3000
    p95 = total.get_response_time_percentile(0.95) or 0
    hits = sum(n for (_, cache), n in COUNTERS.items() if cache in ("HIT", "STALE"))
    answered = sum(n for (_, cache), n in COUNTERS.items() if cache != "-")
    print(f"LOCUST_VERDICT requests={total.num_requests} fail_ratio={total.fail_ratio:.4f} "
          f"(max {max_errors}) p95_ms={p95:.0f} (max {max_p95:g}) cache_hit_share={hits / max(1, answered):.3f}")
    reasons = []
    if total.num_requests == 0:
        reasons.append("no request was made")
    if total.fail_ratio > max_errors:
        reasons.append(f"error ratio {total.fail_ratio:.4f} > {max_errors}")
    if p95 > max_p95:
        reasons.append(f"p95 {p95:.0f} ms > {max_p95:g} ms")
    environment.process_exit_code = 1 if reasons else 0
    print("LOCUST_RESULT " + ("FAILED: " + "; ".join(reasons) if reasons else "passed"))

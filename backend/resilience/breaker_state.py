"""The breaker's state machine on one JSON document, in Python (local stores) and in Lua (Redis), alike.

Document: {"state", "opened_at", "next_probe_at", "consecutive", "buckets": {"<second>": [calls, failures]},
"trials": issued half-open permits, "trial_ok": successful trials, "trial_since": when permits were last issued}.
Both versions take the same arguments and return the same answers; tests run each against the same cases.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BreakerConfig:
    """resilience4j-style knobs."""

    failure_threshold: int = 5          # consecutive failures that open the breaker
    failure_rate: float = 0.5           # or this failure rate over the window ...
    minimum_calls: int = 10             # ... once the window holds at least this many calls
    window_seconds: int = 60
    recovery_timeout: float = 60.0      # open -> half-open after this
    half_open_calls: int = 1            # trial permits across every worker and instance
    trial_timeout: float = 60.0         # a permit whose call never reported is reissued after this

    def args(self) -> list[Any]:
        return [self.failure_threshold, self.failure_rate, self.minimum_calls, self.window_seconds,
                self.recovery_timeout, self.half_open_calls, self.trial_timeout]


def closed_state() -> dict[str, Any]:
    return {"state": "closed", "opened_at": 0, "next_probe_at": 0, "consecutive": 0, "buckets": {},
            "trials": 0, "trial_ok": 0, "trial_since": 0}


def _open(doc: dict[str, Any], now: float, cfg: BreakerConfig) -> None:
    doc.update(state="open", opened_at=now, next_probe_at=now + cfg.recovery_timeout, trials=0, trial_ok=0)


def _window(doc: dict[str, Any], now: float, cfg: BreakerConfig) -> tuple[int, int]:
    """Drop buckets older than the window; return (calls, failures) within it."""
    horizon = math.floor(now) - cfg.window_seconds
    calls = failures = 0
    for second in list(doc["buckets"]):
        if int(second) <= horizon:
            del doc["buckets"][second]
        else:
            calls += doc["buckets"][second][0]
            failures += doc["buckets"][second][1]
    return calls, failures


def acquire(doc: dict[str, Any], now: float, cfg: BreakerConfig) -> str:
    """Decide one call: 'allow', 'trial' (a half-open permit) or 'reject'. Mutates doc."""
    state = doc["state"]
    if state == "closed":
        return "allow"
    if state == "forced_open":
        return "reject"
    if state == "open":
        if now < doc["next_probe_at"]:
            return "reject"
        doc.update(state="half_open", trials=0, trial_ok=0, trial_since=now)
    if doc["trials"] > 0 and now - doc["trial_since"] > cfg.trial_timeout:
        doc.update(trials=0, trial_ok=0)  # the trial callers vanished (a worker died): issue permits again
    if doc["trials"] < cfg.half_open_calls:
        doc["trials"] += 1
        doc["trial_since"] = now
        return "trial"
    return "reject"


def record(doc: dict[str, Any], now: float, failed: bool, trial: bool, cfg: BreakerConfig) -> None:
    """Account one finished call and make the transition it causes. Mutates doc."""
    state = doc["state"]
    if state == "half_open" and trial:
        if failed:
            _open(doc, now, cfg)
            return
        doc["trial_ok"] += 1
        if doc["trial_ok"] >= cfg.half_open_calls:
            doc.update(closed_state())
        return
    if state != "closed":
        return  # a call that began before the breaker opened says nothing about now
    bucket = doc["buckets"].setdefault(str(math.floor(now)), [0, 0])
    bucket[0] += 1
    bucket[1] += 1 if failed else 0
    doc["consecutive"] = doc["consecutive"] + 1 if failed else 0
    calls, failures = _window(doc, now, cfg)
    rate_tripped = calls >= cfg.minimum_calls and failures / calls >= cfg.failure_rate
    if doc["consecutive"] >= cfg.failure_threshold or rate_tripped:
        _open(doc, now, cfg)


def snapshot(doc: dict[str, Any], now: float, cfg: BreakerConfig) -> dict[str, Any]:
    """What operators see: state, failure rate and calls in the window, opened at, next probe at."""
    view = json.loads(json.dumps(doc))
    calls, failures = _window(view, now, cfg)
    state = view["state"]
    if state == "open" and now >= view["next_probe_at"]:
        state = "half_open"  # the next call will be a trial
    return {"state": state, "calls_in_window": calls, "failures_in_window": failures,
            "failure_rate": round(failures / calls, 4) if calls else 0.0,
            "consecutive_failures": view["consecutive"],
            "opened_at": view["opened_at"] or None,
            "next_probe_at": view["next_probe_at"] if state in ("open", "half_open") else None}


LUA = """
local key, op, now = KEYS[1], ARGV[1], tonumber(ARGV[2])
local threshold, rate, min_calls, window = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local recovery, half_open_calls, trial_timeout = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local failed, trial = ARGV[10] == '1', ARGV[11] == '1'
local function closed()
  return {state='closed', opened_at=0, next_probe_at=0, consecutive=0, buckets={}, trials=0, trial_ok=0, trial_since=0}
end
local raw = redis.call('GET', key)
local doc = raw and cjson.decode(raw) or closed()
if type(doc.buckets) ~= 'table' then doc.buckets = {} end
local function open()
  doc.state, doc.opened_at, doc.next_probe_at, doc.trials, doc.trial_ok = 'open', now, now + recovery, 0, 0
end
local function save()
  if next(doc.buckets) == nil then doc.buckets = cjson.decode('{}') end
  redis.call('SET', key, cjson.encode(doc))
end
local answer = 'ok'
if op == 'acquire' then
  if doc.state == 'closed' then return {'allow', '0'} end
  if doc.state == 'forced_open' then return {'reject', tostring(now + recovery)} end
  if doc.state == 'open' then
    if now < doc.next_probe_at then return {'reject', tostring(doc.next_probe_at)} end
    doc.state, doc.trials, doc.trial_ok, doc.trial_since = 'half_open', 0, 0, now
  end
  if doc.trials > 0 and now - doc.trial_since > trial_timeout then doc.trials, doc.trial_ok = 0, 0 end
  if doc.trials < half_open_calls then
    doc.trials, doc.trial_since, answer = doc.trials + 1, now, 'trial'
  else
    answer = 'reject'
  end
elseif op == 'record' then
  if doc.state == 'half_open' and trial then
    if failed then open() else
      doc.trial_ok = doc.trial_ok + 1
      if doc.trial_ok >= half_open_calls then doc = closed() end
    end
  elseif doc.state == 'closed' then
    local second = tostring(math.floor(now))
    local bucket = doc.buckets[second] or {0, 0}
    bucket[1] = bucket[1] + 1
    if failed then bucket[2] = bucket[2] + 1 end
    doc.buckets[second] = bucket
    if failed then doc.consecutive = doc.consecutive + 1 else doc.consecutive = 0 end
    local calls, failures, horizon = 0, 0, math.floor(now) - window
    for s, b in pairs(doc.buckets) do
      if tonumber(s) <= horizon then doc.buckets[s] = nil else calls, failures = calls + b[1], failures + b[2] end
    end
    if doc.consecutive >= threshold or (calls >= min_calls and failures / calls >= rate) then open() end
  else
    return {'ok', '0'}
  end
elseif op == 'reset' then
  doc = closed()
elseif op == 'force_open' then
  doc = closed()
  doc.state, doc.opened_at = 'forced_open', now
elseif op == 'read' then
  return {'doc', raw or ''}
end
save()
return {answer, tostring(now + 1)}
"""

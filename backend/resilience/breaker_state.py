"""The breaker's state machine on one JSON document, in Python (local stores) and in Lua (Redis), alike.

Document: {"state", "opened_at", "next_probe_at", "consecutive", "buckets": {"<second>": [calls, failures]},
"trials": half-open permits issued and not released, "trial_ok": successful trials, "trial_since": when permits were
last issued}.
Both versions take the same arguments and return the same answers; tests run each against the same cases. A stored
document of another shape (an older version's, a hand edit, garbage, another Redis type) is read as closed, like
unreadable state, and reported as malformed: it never turns into an error. On Redis the script reads Redis's own
clock (TIME), so every worker and instance times the breaker alike; the Python twin uses the local clock it is given.
"""
from __future__ import annotations

import json
import math
import re
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


STATES = ("closed", "open", "half_open", "forced_open")
_NUMBERS = ("opened_at", "next_probe_at", "consecutive", "trials", "trial_ok", "trial_since")
_SECOND = re.compile(r"[0-9]{1,12}")


def closed_state() -> dict[str, Any]:
    return {"state": "closed", "opened_at": 0, "next_probe_at": 0, "consecutive": 0, "buckets": {},
            "trials": 0, "trial_ok": 0, "trial_since": 0}


def parse(raw: str | None) -> tuple[dict[str, Any], bool]:
    """(document, malformed): the stored document, or a closed one when there is none or it is not one this
    version can use (then malformed is True). Accepts exactly what the Lua twin's ``valid`` accepts."""
    if not raw:
        return closed_state(), False
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return closed_state(), True
    if isinstance(doc, dict) and doc.get("buckets") == []:
        doc["buckets"] = {}  # Lua's cjson cannot tell an empty object from an empty array
    return (doc, False) if _valid(doc) else (closed_state(), True)


def _number(value: Any) -> bool:
    """A finite number >= 0 (JSON true/false are not numbers here, as in Lua)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return 0 <= float(value) < math.inf
    except OverflowError:  # an integer beyond a double: Lua reads it as infinity
        return False


def _valid(doc: Any) -> bool:
    if not isinstance(doc, dict) or not isinstance(doc.get("state"), str) or doc["state"] not in STATES:
        return False
    if not all(_number(doc.get(field)) for field in _NUMBERS) or not isinstance(doc.get("buckets"), dict):
        return False
    return all(_SECOND.fullmatch(second) and isinstance(bucket, list) and len(bucket) == 2
               and _number(bucket[0]) and _number(bucket[1]) for second, bucket in doc["buckets"].items())


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


def release(doc: dict[str, Any], trial: bool) -> bool:
    """Give back a half-open trial permit whose call proved nothing about the provider, so another trial may be
    issued at once; any other permit (or state) needs nothing. Mutates doc; returns whether it changed."""
    if doc["state"] != "half_open" or not trial or doc["trials"] <= 0:
        return False
    doc["trials"] = max(doc["trials"] - 1, 0)
    return True


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
-- Reading the clock before writing needs effects replication: the default since Redis 5, asked for before it.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local key, op = KEYS[1], ARGV[1]
local threshold, rate, min_calls, window = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local recovery, half_open_calls, trial_timeout = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local failed, trial = ARGV[9] == '1', ARGV[10] == '1'
local stamp = string.format('%.6f', now)
local function closed()
  return {state='closed', opened_at=0, next_probe_at=0, consecutive=0, buckets={}, trials=0, trial_ok=0, trial_since=0}
end
local function number(x) return type(x) == 'number' and x == x and x >= 0 and x < math.huge end
local states = {closed=true, open=true, half_open=true, forced_open=true}
-- Exactly what the Python twin's parse() accepts; anything else is read as closed and reported as malformed.
local function valid(d)
  if type(d) ~= 'table' or type(d.state) ~= 'string' or not states[d.state] then return false end
  for _, field in ipairs({'opened_at', 'next_probe_at', 'consecutive', 'trials', 'trial_ok', 'trial_since'}) do
    if not number(d[field]) then return false end
  end
  if type(d.buckets) ~= 'table' then return false end
  for s, b in pairs(d.buckets) do
    if type(s) ~= 'string' or #s > 12 or not string.match(s, '^%d+$') or type(b) ~= 'table' or #b ~= 2
        or not number(b[1]) or not number(b[2]) then return false end
  end
  return true
end
local raw, malformed = redis.pcall('GET', key), 0
if type(raw) ~= 'string' then
  if raw then malformed = 1 end  -- another Redis type under the key: WRONGTYPE
  raw = ''
end
if op == 'read' then return {'doc', raw, stamp, malformed} end
local doc = closed()
if raw ~= '' then
  local ok, parsed = pcall(cjson.decode, raw)
  if ok and valid(parsed) then doc = parsed else malformed = 1 end
end
local function open()
  doc.state, doc.opened_at, doc.next_probe_at, doc.trials, doc.trial_ok = 'open', now, now + recovery, 0, 0
end
local function save()
  if next(doc.buckets) == nil then doc.buckets = cjson.decode('{}') end
  redis.call('SET', key, cjson.encode(doc))
end
local answer = 'ok'
if op == 'acquire' then
  if doc.state == 'closed' then return {'allow', '0', stamp, malformed} end
  if doc.state == 'forced_open' then return {'reject', tostring(now + recovery), stamp, malformed} end
  if doc.state == 'open' then
    if now < doc.next_probe_at then return {'reject', tostring(doc.next_probe_at), stamp, malformed} end
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
    return {'ok', '0', stamp, malformed}
  end
elseif op == 'release' then
  -- Only a half-open trial permit goes back; anything else changes nothing and is not written.
  if doc.state ~= 'half_open' or not trial or doc.trials <= 0 then return {'ok', '0', stamp, malformed} end
  doc.trials = math.max(doc.trials - 1, 0)
elseif op == 'reset' then
  doc = closed()
elseif op == 'force_open' then
  doc = closed()
  doc.state, doc.opened_at = 'forced_open', now
end
save()
return {answer, tostring(now + 1), stamp, malformed}
"""

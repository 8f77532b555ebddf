"""One subject's spend on one UTC day (a caller's, or a client key's), as one JSON document, in Python (local
stores) and in Lua (Redis), alike.

Document: {"spent": USD charged today, "calls": paid calls settled today, "holds": {"<id>": [USD, expires_at]}}.
A paid call is admitted when, for each subject it is charged to (the caller and its key), the spend plus what the
calls in flight hold is below that subject's budget; it then holds an upper bound of its own cost on each, and when
it ends it settles: the hold goes and its real cost is added. However many calls run at once, the spend passes a
budget by at most the cost of the call admitted last, the one allowed to cross it. A hold whose call never settled
(its process died) expires with the call's deadline, so a crash does not keep a learner's money held all day.

Both versions take the same arguments and give the same answers; tests run each through the same cases. A stored
document of another shape (a hand edit, another Redis type) reads as an empty day and is reported: never an error.
On Redis the script reads Redis's clock (TIME) for the holds' expiry, so every instance ages them alike.
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable

DAY_TTL = 2 * 86400  # a day's documents outlive the day (a late settle, the admin's view of yesterday), then go


def empty() -> dict[str, Any]:
    return {"spent": 0.0, "calls": 0, "holds": {}}


def _number(value: Any) -> bool:
    """A finite number >= 0 (JSON true/false are not numbers here, as in Lua)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value < math.inf


def parse(raw: str | None) -> tuple[dict[str, Any], bool]:
    """(document, malformed): the stored document, or an empty day when there is none or it has another shape.
    Accepts exactly what the Lua twin's ``valid`` accepts."""
    if not raw:
        return empty(), False
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return empty(), True
    if isinstance(doc, dict) and doc.get("holds") == []:
        doc["holds"] = {}  # Lua's cjson cannot tell an empty object from an empty array
    valid = (isinstance(doc, dict) and _number(doc.get("spent")) and _number(doc.get("calls"))
             and isinstance(doc.get("holds"), dict)
             and all(isinstance(h, list) and len(h) == 2 and _number(h[0]) and _number(h[1])
                     for h in doc["holds"].values()))
    return (doc, False) if valid else (empty(), True)


def held(doc: dict[str, Any], now: float) -> float:
    """What the calls in flight hold, once the expired holds are dropped (mutates doc)."""
    for hold_id in [h for h, (_, expires) in doc["holds"].items() if expires <= now]:
        del doc["holds"][hold_id]
    return float(sum(amount for amount, _ in doc["holds"].values()))


def refuses(doc: dict[str, Any], now: float, budget: float | None) -> bool:
    """Whether a new paid call is refused: the spend and the holds have reached the budget."""
    in_flight = held(doc, now)
    return budget is not None and doc["spent"] + in_flight >= budget


def take(doc: dict[str, Any], now: float, hold_id: str, amount: float, ttl: float) -> None:
    """Hold ``amount`` for a call admitted now, until it settles or ``ttl`` seconds pass."""
    if amount > 0:
        doc["holds"][hold_id] = [amount, now + ttl]


def settle(doc: dict[str, Any], hold_id: str, cost: float) -> None:
    """The call ended: its hold goes, its cost is spent."""
    doc["holds"].pop(hold_id, None)
    if cost > 0:
        doc["spent"] += cost
        doc["calls"] += 1


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


# -- the Python twin's steps, one store update each (the meter composes them; the script does all at once) -------

LOCAL_TOP = 500  # callers the local index keeps (Redis keeps all in a sorted set)


def admit_update(raw: str | None, clock: Callable[[], float], budget: float | None, hold_id: str, amount: float,
                 seconds: float, report: Callable[[], None]) -> tuple[str | None, tuple[bool, float]]:
    """One subject's admission: (new document or None, (refused, spent)). The clock is read inside the store's
    atomic update, as the script reads TIME."""
    now = clock()
    doc, malformed = parse(raw)
    if malformed:
        report()
    if refuses(doc, now, budget):
        return None, (True, float(doc["spent"]))
    if amount <= 0:
        return None, (False, float(doc["spent"]))
    take(doc, now, hold_id, amount, seconds)
    return dump(doc), (False, float(doc["spent"]))


def settle_update(raw: str | None, hold_id: str, cost_usd: float) -> tuple[str | None, None]:
    doc, _ = parse(raw)
    settle(doc, hold_id, cost_usd)
    return dump(doc), None


def parse_index(raw: str | None) -> dict[str, Any]:
    """The local twin of the top callers' sorted set and the day's total: {"total", "callers": {caller: spent}}."""
    try:
        index = json.loads(raw) if raw else None
    except ValueError:
        index = None
    if not isinstance(index, dict) or not isinstance(index.get("callers"), dict):
        return {"total": 0.0, "callers": {}}
    return index


def index_update(raw: str | None, caller: str, cost_usd: float) -> tuple[str, None]:
    index = parse_index(raw)
    index["total"] = float(index.get("total", 0)) + cost_usd
    callers = index["callers"]
    callers[caller] = float(callers.get(caller, 0)) + cost_usd
    if len(callers) > LOCAL_TOP:  # keep the biggest spenders: the list is for "who spends most"
        del callers[min(callers, key=lambda name: callers[name])]
    return dump(index), None


LUA = """
-- KEYS: the caller's document, the key's document, the overrides' version, the day's top callers (a sorted set),
-- the day's total, the caller's requests today (counted with the rate limits). ARGV[1]: admit | settle | read.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local op = ARGV[1]
local function number(x) return type(x) == 'number' and x == x and x >= 0 and x < math.huge end
local function valid(d)
  if type(d) ~= 'table' or not number(d.spent) or not number(d.calls) or type(d.holds) ~= 'table' then
    return false
  end
  for _, h in pairs(d.holds) do
    if type(h) ~= 'table' or #h ~= 2 or not number(h[1]) or not number(h[2]) then return false end
  end
  return true
end
local malformed = 0
local function load(key)
  local raw = redis.pcall('GET', key)  -- pcall: a key of another type reads as an empty day, never an error
  if type(raw) == 'string' then
    local ok, doc = pcall(cjson.decode, raw)
    if ok and valid(doc) then return doc end
    malformed = 1
  end
  return {spent = 0, calls = 0, holds = {}}
end
local function held(doc)
  local sum = 0
  for id, h in pairs(doc.holds) do
    if h[2] <= now then doc.holds[id] = nil else sum = sum + h[1] end
  end
  return sum
end
local function save(key, doc, ttl)
  if next(doc.holds) == nil then doc.holds = cjson.decode('{}') end
  redis.call('SET', key, cjson.encode(doc), 'EX', ttl)
end
local docs = {load(KEYS[1]), load(KEYS[2])}
if op == 'read' then
  local out = {}
  for i = 1, 2 do
    local h = held(docs[i])
    out[#out + 1] = tostring(docs[i].spent); out[#out + 1] = tostring(h); out[#out + 1] = tostring(docs[i].calls)
  end
  out[#out + 1] = redis.call('GET', KEYS[6]) or '0'
  out[#out + 1] = redis.call('GET', KEYS[3]) or '0'
  out[#out + 1] = malformed
  return out
end
if op == 'admit' then
  -- ARGV: hold id, amount, ttl, caller budget, key budget ('' = none), the version the budgets were read under.
  local version = redis.call('GET', KEYS[3]) or '0'
  if version ~= ARGV[7] then return {'stale', 0, '0', '0', version, malformed} end
  local amount, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
  for i = 1, 2 do
    local h = held(docs[i])
    local budget = tonumber(ARGV[4 + i])
    if budget and docs[i].spent + h >= budget then
      return {'refuse', i, tostring(docs[i].spent), tostring(h), version, malformed}
    end
  end
  if amount > 0 then
    for i = 1, 2 do
      docs[i].holds[ARGV[2]] = {amount, now + ttl}
      save(KEYS[i], docs[i], tonumber(ARGV[8]))
    end
  end
  return {'ok', 0, tostring(docs[1].spent), '0', version, malformed}
end
-- settle. ARGV: hold id, cost, the caller as the top list names it, day TTL.
local cost, ttl = tonumber(ARGV[3]), tonumber(ARGV[5])
for i = 1, 2 do
  held(docs[i])
  docs[i].holds[ARGV[2]] = nil
  if cost > 0 then docs[i].spent = docs[i].spent + cost; docs[i].calls = docs[i].calls + 1 end
  save(KEYS[i], docs[i], ttl)
end
if cost > 0 then
  redis.call('ZINCRBY', KEYS[4], cost, ARGV[4])
  redis.call('EXPIRE', KEYS[4], ttl)
  redis.call('INCRBYFLOAT', KEYS[5], cost)
  redis.call('EXPIRE', KEYS[5], ttl)
end
-- The overrides version, so that the process reads a changed override before its next admission.
return {'ok', tostring(docs[1].spent), tostring(docs[2].spent), redis.call('GET', KEYS[3]) or '0', malformed}
"""

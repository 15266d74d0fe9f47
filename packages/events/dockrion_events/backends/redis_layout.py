"""How a run is laid out in Redis: key names, the Lua scripts that change a run, and how
stream entries decode back into records.

Every key name Dockrion uses in Redis is made by `Keys`. Every key of a run sits under one
hash tag, so the layout works on Redis Cluster:

    <prefix>:{<run_id>}:state      hash   the run record, its status and `next` sequence
    <prefix>:{<run_id>}:log        stream entry id `<sequence>-1`, fields t (type), d (JSON)
    <prefix>:{<run_id>}:lease      string the instance running the agent (renewed, expiring)
    <prefix>:{<run_id>}:resumed    string set while the interrupt the run stopped at is being
                                          answered (expiring)
    <prefix>:queue                 stream background runs for workers (`redis_queue.py`): entry
                                          fields run (the id), job (JSON), read
                                          through the consumer group `workers`
    <prefix>:runs                  zset   run ids by last activity, seconds (listing)
    <prefix>:running               set    ids of RUNNING runs (orphan detection)
    <prefix>:owner:{<owner>}:runs  zset   an owner's run ids by creation (µs): its
                                          listing (the newest 10,000, expiring)
    <prefix>:thread:{<thread_id>}  string the owner of a conversation thread (renewed,
                                          expiring)
    <prefix>:thread:{<thread_id>}:turn     string the run holding the thread's turn
                                                  (renewed, expiring)
    <prefix>:thread:{<thread_id>}:waiting  zset   runs waiting for the turn, by ticket
    <prefix>:thread:{<thread_id>}:alive    hash   when each waiter stops counting (ms)
    <prefix>:thread:{<thread_id>}:tickets  string the last ticket handed out
    <prefix>:thread:{<thread_id>}:stop:<holder>  string set when the run `holder` is
                                                  asked to stop (expiring)
    <prefix>:thread:{<thread_id>}:runs     zset   the thread's runs by creation (µs)
    <prefix>:thread:{<thread_id>}:record   hash   what the thread keeps of each run (JSON)
    <prefix>:ratelimit:<principal> string a principal's rate-limit count (the runtime's
                                          `auth.rate_limits`; expiring)
    <prefix>:slots:<kind>:<principal>
                                   zset   a principal's runs or streams going at once (the
                                          runtime's per-caller bounds): one member per
                                          slot, scored by when its lease ends (renewed)

Appends and terminal transitions are Lua scripts touching one run's keys only, so they are
atomic: a terminal event is appended exactly once, and the status changes with it. No
script or transaction touches two runs, or a run and the two shared keys (which hash to
slots of their own on a cluster): the shared keys are written by separate commands.

Memory is bounded by the retention (`ttl`, the `stream_ttl_seconds` setting). Every key of
a run expires `ttl` seconds after the run's last sign of life: its creation and start, each
append and lease renewal (which refresh the expiry), its end. The lease expires by itself.
The index entries carry their last activity as score and are trimmed once older than the
retention; the index and the running set themselves expire `ttl` seconds after the last
write, and the running set loses a run when it ends (or when the orphan sweep finds its
keys gone).
"""

from __future__ import annotations

import json
from typing import Any

from ..record import EventRecord
from ..runs import Run
from ..sse import encode_stored_frame

__all__ = ["SCRIPTS", "Keys", "decode_entries", "run_from_state", "sequence_of", "text"]


class Keys:
    """The key names under one prefix."""

    __slots__ = ("prefix", "queue", "running", "runs")

    # The consumer group every worker reads the queue through.
    QUEUE_GROUP = "workers"

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.runs = f"{prefix}:runs"
        self.running = f"{prefix}:running"
        self.queue = f"{prefix}:queue"

    def state(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:state"

    def log(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:log"

    def lease(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:lease"

    def owner_runs(self, owner: str) -> str:
        """An owner's runs by creation (one key a command, so no cluster constraint)."""
        return f"{self.prefix}:owner:{{{owner}}}:runs"

    def resumed(self, run_id: str) -> str:
        """Set once the interrupt a run stopped at is being answered (`claim_resume`)."""
        return f"{self.prefix}:{{{run_id}}}:resumed"

    def thread(self, thread_id: str) -> str:
        """Who owns a conversation thread: a key of its own (its own hash tag)."""
        return f"{self.prefix}:thread:{{{thread_id}}}"

    def thread_turn(self, thread_id: str) -> list[str]:
        """A thread's turn: the holder, the queue of waiters, their deadlines and the ticket
        counter (`TAKE_TURN`'s keys, in order; one hash tag, so one cluster slot)."""
        base = self.thread(thread_id)
        return [f"{base}:turn", f"{base}:waiting", f"{base}:alive", f"{base}:tickets"]

    def thread_stop(self, thread_id: str, holder: str) -> str:
        """Set when the run holding (or waiting for) a thread's turn is asked to stop."""
        return f"{self.thread(thread_id)}:stop:{holder}"

    def thread_record(self, thread_id: str) -> list[str]:
        """What a thread keeps of its runs: their ids by creation and an entry each
        (`RECORD_RUN`'s keys, in order; the thread's hash tag)."""
        base = self.thread(thread_id)
        return [f"{base}:runs", f"{base}:record"]

    def rate_limit(self, principal: str) -> str:
        """A principal's rate-limit count (one key a script, so no hash tag is needed)."""
        return f"{self.prefix}:ratelimit:{principal}"

    def usage(self, day: str, owner: str) -> str:
        """What one owner used on one day (a hash of counters; its own hash tag)."""
        return f"{self.prefix}:usage:{day}:{{{owner}}}"

    def usage_owners(self, day: str) -> str:
        """The owners that used anything on one day (a set)."""
        return f"{self.prefix}:usage:{day}:owners"

    def caller_slots(self, kind: str, principal: str) -> str:
        """A principal's slots of one kind (`runs`, `streams`), for the per-caller bounds
        (one key a script, so no hash tag is needed)."""
        return f"{self.prefix}:slots:{kind}:{principal}"


# Every script that changes a run starts here: the run must exist and not have ended.
_OPEN_RUN = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status == 'COMPLETED' or status == 'FAILED' or status == 'CANCELLED' then
  return {'finished', status}
end
"""

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
redis.call('HSET', KEYS[1], 'run', ARGV[1], 'status', 'ACCEPTED', 'next', 0)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 'ok'
"""

_START = (
    _OPEN_RUN
    + """
if status == 'ACCEPTED' then
  redis.call('HSET', KEYS[1], 'status', 'RUNNING', 'started_at', ARGV[1], 'attempt', 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {'ok'}
"""
)

_APPEND = (
    _OPEN_RUN
    + """
local nxt = tonumber(redis.call('HGET', KEYS[1], 'next'))
local first = tonumber(ARGV[2])
local count = (#ARGV - 3) / 2
local lost = nil
if nxt < first then
  -- The log is behind its producer: events it acknowledged are gone (a failover to a
  -- replica that had not received them). Later events go after the hole, so a reader
  -- already past the lost ones goes on; the hole is recorded.
  lost = tostring(nxt)
  redis.call('HSET', KEYS[1], 'lost', nxt .. '-' .. (first - 1))
elseif nxt ~= first then
  -- A retry of this very batch whose reply was lost (the connection cut after it ran, a
  -- failover): stored already if the log ends with its last event. Anything else: a gap.
  if nxt == first + count then
    local last = redis.call('XRANGE', KEYS[2], (nxt - 1) .. '-1', (nxt - 1) .. '-1')
    if #last == 1 and last[1][2][4] == ARGV[#ARGV] then return {'ok'} end
  end
  return {'gap', tostring(nxt)}
end
for i = 0, count - 1 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], (first + i) .. '-1',
             't', ARGV[4 + 2 * i], 'd', ARGV[5 + 2 * i])
end
redis.call('HSET', KEYS[1], 'next', first + count)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
if lost then return {'lost', lost} end
return {'ok'}
"""
)

_FINISH = (
    _OPEN_RUN
    + """
local nxt = tonumber(redis.call('HGET', KEYS[1], 'next'))
if nxt > tonumber(ARGV[1]) then return {'retry'} end
if nxt < tonumber(ARGV[1]) then
  -- the producer numbered events this log lost (a failover): the end goes after them
  redis.call('HSET', KEYS[1], 'lost', nxt .. '-' .. (tonumber(ARGV[1]) - 1))
  nxt = tonumber(ARGV[1])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], nxt .. '-1', 't', ARGV[3], 'd', ARGV[4])
redis.call('HSET', KEYS[1], 'status', ARGV[5], 'completed_at', ARGV[6], 'output', ARGV[7],
           'error', ARGV[8], 'next', nxt + 1)
redis.call('EXPIRE', KEYS[1], ARGV[9])
redis.call('EXPIRE', KEYS[2], ARGV[9])
redis.call('DEL', KEYS[3])
return {'ok'}
"""
)

# A worker takes over a RUNNING run whose worker died: the next attempt, and the run's
# lease. ARGV: holder, lease ms, ttl. Returns {'ok', attempt, next sequence}.
_ATTEMPT = (
    _OPEN_RUN
    + """
if status ~= 'RUNNING' then return {'finished', status} end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
if attempt == 1 then attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1) end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {'ok', tostring(attempt), redis.call('HGET', KEYS[1], 'next')}
"""
)

_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return 1
"""

# One run at a time per thread. ARGV: holder, lease ms, "1" to wait in line when busy.
# Waiters that stopped asking (past their deadline in `alive`) leave the line first; the
# turn goes to the holder already holding it (renewed), or when it is free to the first in
# line (or anyone when nobody waits). Returns 1 when `holder` holds the turn.
_TAKE_TURN = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local alive = redis.call('HGETALL', KEYS[3])
for i = 1, #alive, 2 do
  if tonumber(alive[i + 1]) < now_ms then
    redis.call('ZREM', KEYS[2], alive[i])
    redis.call('HDEL', KEYS[3], alive[i])
  end
end
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #head == 0 or head[1] == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('HDEL', KEYS[3], ARGV[1])
    return 1
  end
end
if ARGV[3] == '1' then
  if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
    redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ARGV[1])
  end
  redis.call('HSET', KEYS[3], ARGV[1], now_ms + tonumber(ARGV[2]))
  for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2]) * 10) end
end
return 0
"""

# ARGV: holder. Gives the turn back (when held) and leaves the line.
_END_TURN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""

# ARGV: owner. Deletes the thread's ownership only when `owner` holds it.
_RELEASE_THREAD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

# A run's entry in its thread's record. ARGV: run id, created µs, entry JSON, ttl ms ("":
# none), the most runs kept (the oldest leave first).
_RECORD_RUN = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[5])
if excess > 0 then
  local old = redis.call('ZRANGE', KEYS[1], 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
  redis.call('HDEL', KEYS[2], unpack(old))
end
for i = 1, 2 do
  if ARGV[4] == '' then redis.call('PERSIST', KEYS[i])
  else redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
end
return 1
"""

SCRIPTS = {
    "record_run": _RECORD_RUN,
    "release_thread": _RELEASE_THREAD,
    "take_turn": _TAKE_TURN,
    "end_turn": _END_TURN,
    "create": _CREATE,
    "start": _START,
    "append": _APPEND,
    "finish": _FINISH,
    "renew": _RENEW,
    "attempt": _ATTEMPT,
}


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def sequence_of(entry_id: Any) -> int:
    """The sequence of a log entry: its id is `<sequence>-1`."""
    return int(text(entry_id).split("-")[0])


def decode_entries(entries: Any) -> list[EventRecord]:
    """Stream entries (`<sequence>-1`, {t, d}) as records; each SSE frame is made from the
    bytes Redis sent, without decoding them first."""
    records = []
    for entry_id, fields in entries:
        sequence = sequence_of(entry_id)
        kind, data = fields[b"t"], fields[b"d"]
        frame = encode_stored_frame(sequence, kind, data)
        records.append(EventRecord(sequence, kind.decode(), data.decode(), frame))
    return records


def run_from_state(fields: dict[bytes, bytes]) -> Run:
    """A run from its state hash (`Keys.state`): the creation JSON under `run`, then what
    changed since, each in a field of its own."""
    data: dict[str, Any] = json.loads(fields[b"run"])
    data["status"] = text(fields[b"status"])
    for name in ("started_at", "completed_at"):
        if fields.get(name.encode()):
            data[name] = text(fields[name.encode()])
    for name in ("output", "error"):
        if fields.get(name.encode()):
            data[name] = json.loads(fields[name.encode()])
    data["last_sequence"] = int(fields[b"next"]) - 1
    if fields.get(b"attempt"):
        data["attempt"] = int(fields[b"attempt"])
    return Run.model_validate(data)

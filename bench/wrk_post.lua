-- wrk script of bench/intake.py: POSTs the JSON body in the file $WRK_BODY_FILE to the URL, counts answers
-- other than 201, and prints one line "WRKJSON {...}" with the figures when done.
--
-- Closed loop (no $WRK_DELAY_MS): every connection sends its next request as soon as the last one is answered.
-- Paced (open loop): $WRK_DELAY_MS is the per-connection delay between two requests (connections / target
-- rate, computed by the caller) and $WRK_CONNECTIONS the connections of this wrk. A thread serves its
-- connections from one schedule of send slots, one every delay / connections-of-the-thread: delay() returns the
-- time to the next free slot, so a slow answer does not slow the sending down (an answer that takes longer than
-- the delay only means another connection takes the slot). Slots are claimed in order and never skipped: a
-- server that falls behind sees the backlog, as it would from independent clients.

local ffi = require("ffi")
ffi.cdef [[
struct rh_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clock_id, struct rh_timespec *tp);
]]
local timespec = ffi.new("struct rh_timespec")
local CLOCK_MONOTONIC = 1

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

local body_file = assert(os.getenv("WRK_BODY_FILE"), "WRK_BODY_FILE is not set")
local handle = assert(io.open(body_file, "rb"))
wrk.method = "POST"
wrk.body = handle:read("*a")
handle:close()
wrk.headers["Content-Type"] = "application/json"

local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "")
local connections = tonumber(os.getenv("WRK_CONNECTIONS") or "1")
local thread_count = tonumber(os.getenv("WRK_THREADS") or "1")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads - 1)
end

-- Per thread (each has a Lua state of its own).
non_201 = 0
first_other_status = 0
local slot_ms = nil
local next_slot = nil

function init(args)
  if delay_ms then
    local per_thread = connections / thread_count
    if per_thread < 1 then per_thread = 1 end
    slot_ms = delay_ms / per_thread
    -- Threads start their schedules a fraction of a slot apart, so their sends interleave.
    next_slot = now_ms() + slot_ms * (thread_index or 0) / thread_count
  end
end

if delay_ms then
  function delay()
    local now = now_ms()
    local wait = next_slot - now
    next_slot = next_slot + slot_ms
    if wait < 0 then
      return 0
    end
    return math.floor(wait)
  end
end

function response(status, headers, body)
  if status ~= 201 then
    non_201 = non_201 + 1
    if first_other_status == 0 then first_other_status = status end
  end
end

function done(summary, latency, requests)
  local bad, other = 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non_201")
    local status = thread:get("first_other_status")
    if other == 0 and status ~= 0 then other = status end
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"duration_us": %d, "requests": %d, "non_201": %d, "first_other_status": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.duration, summary.requests, bad, other,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end

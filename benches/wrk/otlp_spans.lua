-- OTLP protobuf, 100 spans a request: the body file OTLP_BODY written by
-- `baseline otlp-body` (benches/baseline.rs). Every request gets a random
-- trace id in place of the 16-byte marker (so the trace index grows as it
-- does with real traffic), and start and end times rising from request to
-- request, from ten minutes ago, at the offsets listed in OTLP_BODY.times
-- (real spans arrive in time order; the same times sent again would
-- scatter every insert over the time index). LuaJIT's FFI patches the
-- bytes in place: its 64-bit integers hold nanoseconds exactly.
-- OTLP_TRACES=K (default 1) spreads each request's spans over K random
-- trace ids, span i in trace i mod K (an export of several traces).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
local ffi = require("ffi")
local path = assert(os.getenv("OTLP_BODY"), "OTLP_BODY: the body file")
local f = assert(io.open(path, "rb"))
local template = f:read("*a")
f:close()

local marker = "TRACEIDPLACEHOLD"
local traces, pos = {}, 1
while true do
  local s = string.find(template, marker, pos, true)
  if not s then break end
  traces[#traces + 1] = s - 1
  pos = s + #marker
end
assert(#traces == 100, "expected the marker 100 times in " .. path)

local starts, ends = {}, {}
for line in io.lines(path .. ".times") do
  local s, e = line:match("^(%d+) (%d+)$")
  starts[#starts + 1] = tonumber(s)
  ends[#ends + 1] = tonumber(e)
end
assert(#starts == 100, "expected 100 time offsets in " .. path .. ".times")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-protobuf"

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
  thread:set("threads", 0) -- set below, once all threads exist
end

local size = #template
local buf = ffi.new("uint8_t[?]", size)
ffi.copy(buf, template, size)
local u64 = ffi.typeof("uint64_t*")
local first, stride, slot, counter
-- Each request takes the next 100 us of span starts (1 us apart); wrk's
-- threads take turns, so no two requests share a time.
function init(args)
  math.randomseed(os.time() * 1000 + (id or 0) * 7919)
  first = (ffi.new("uint64_t", os.time()) - 600ULL) * 1000000000ULL
  stride = ffi.new("uint64_t", 100000)
  slot = ffi.new("uint64_t", (id or 1) - 1)
  counter = ffi.new("uint64_t", 0)
end

local per_request = tonumber(os.getenv("OTLP_TRACES") or "1")
assert(per_request >= 1 and per_request <= 100, "OTLP_TRACES: 1 to 100")
local trace_ids = {}
for k = 1, per_request do
  trace_ids[k] = ffi.new("uint8_t[16]")
end

local lanes = 64 -- more than wrk's threads ever are here
function request()
  local t = first + (counter * lanes + slot) * stride
  counter = counter + 1ULL
  for i = 1, 100 do
    local start = t + ffi.new("uint64_t", i * 1000)
    ffi.cast(u64, buf + starts[i])[0] = start
    ffi.cast(u64, buf + ends[i])[0] = start + 500000000ULL
  end
  for k = 1, per_request do
    local a, b = math.random(0, 2147483647), math.random(0, 2147483647)
    local c, d = math.random(0, 2147483647), math.random(0, 2147483647)
    ffi.copy(trace_ids[k], ffi.new("uint32_t[4]", a, b, c, d), 16)
  end
  for i = 1, #traces do
    ffi.copy(buf + traces[i], trace_ids[(i - 1) % per_request + 1], 16)
  end
  return wrk.format(nil, nil, nil, ffi.string(buf, size))
end

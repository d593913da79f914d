-- OTLP protobuf, 100 spans a request: the body file OTLP_BODY written by
-- `baseline otlp-body` (benches/baseline.rs), whose 100 trace ids are a
-- 16-byte marker replaced in every request by a random trace id, so the
-- trace index grows as it does with real traffic.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
local path = assert(os.getenv("OTLP_BODY"), "OTLP_BODY: the body file")
local f = assert(io.open(path, "rb"))
local body = f:read("*a")
f:close()
local marker = "TRACEIDPLACEHOLD"
local pieces, pos = {}, 1
while true do
  local s, e = string.find(body, marker, pos, true)
  if not s then break end
  pieces[#pieces + 1] = body:sub(pos, s - 1)
  pos = e + 1
end
pieces[#pieces + 1] = body:sub(pos)
assert(#pieces == 101, "expected the marker 100 times in " .. path)

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-protobuf"

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

local parts = {}
function init(args)
  math.randomseed(os.time() * 1000 + (id or 0) * 7919)
end

function request()
  local b = {}
  for i = 1, 16 do b[i] = math.random(0, 255) end
  local trace = string.char(unpack(b))
  for i = 1, #pieces - 1 do
    parts[2 * i - 1] = pieces[i]
    parts[2 * i] = trace
  end
  parts[2 * #pieces - 1] = pieces[#pieces]
  return wrk.format(nil, nil, nil, table.concat(parts))
end

-- One native LLM-call record per request (about 450 bytes, the Go sidecar's
-- fields; the same record as benches/ingest.rs), as an agent posts them.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"provider":"anthropic","model":"claude-sonnet-4","input_text":"Summarise message 1 of the inbox for the owner, briefly.","output_text":"Message 1: a short summary of what it says.","prompt_tokens":1200,"completion_tokens":80,"total_tokens":1280,"cost_usd":0.0048,"latency_ms":2140.5,"session_id":"telegram:42","metadata":{"channel":"telegram"}}'

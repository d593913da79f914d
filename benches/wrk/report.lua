-- Shared by the wrk scripts of benches/run.sh: at the end, one line
-- "WRKJSON {...}" with the counts and latency percentiles in microseconds,
-- so the scripts read numbers rather than wrk's rounded text. "non_2xx" is
-- wrk's "Non-2xx or 3xx responses" (summary.errors.status).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"non_2xx":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end

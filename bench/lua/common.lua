-- Shared by the bench scenarios: thread ids and a JSON summary in done().
-- BENCH_OUT: where done() writes {requests, duration_us, rps, p50_us, p99_us,
-- non2xx, socket errors, pool_exhausted}.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function bench_nthreads()
  return #threads
end

function done(summary, latency, requests)
  local exhausted = 0
  for _, t in ipairs(threads) do
    exhausted = exhausted + (t:get("exhausted") or 0)
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  local out = string.format(
    '{"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"non2xx":%d,"connect_err":%d,"read_err":%d,"write_err":%d,' ..
    '"timeouts":%d,"bytes":%d,"pool_exhausted_threads":%d}\n',
    summary.requests, summary.duration, summary.requests / secs,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout, summary.bytes, exhausted)
  local path = os.getenv("BENCH_OUT")
  if path then
    local f = assert(io.open(path, "w"))
    f:write(out)
    f:close()
  end
  io.write(out)
end

-- POST of a 1 KiB document to a fresh key of a {param} collection each time,
-- baseHash null: BENCH_PATH is the key prefix (e.g. /v1/push/bench/pub/),
-- BENCH_TAG makes keys unique across runs against the same server.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local prefix, body, headers
local n = 0
function init(args)
  prefix = os.getenv("BENCH_PATH") .. (os.getenv("BENCH_TAG") or "k") .. "-" .. tid .. "-"
  -- {"data":{"v":"xxx..."},"baseHash":null} is 1024 bytes in all.
  local fixed = #'{"data":{"v":""},"baseHash":null}'
  body = '{"data":{"v":"' .. string.rep("x", 1024 - fixed) .. '"},"baseHash":null}'
  headers = { ["Content-Type"] = "application/json" }
end
function request()
  n = n + 1
  return wrk.format("POST", prefix .. n, headers, body)
end

-- POST of one ~130-byte append to the same append-only log each time
-- (BENCH_PATH, e.g. /v1/push/bench/log/<id>): the server assigns the ts.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local path, body, headers
function init(args)
  path = os.getenv("BENCH_PATH")
  body = '{"data":{"v":"' .. string.rep("y", 100) .. '"}}'
  headers = { ["Content-Type"] = "application/json" }
end
function request()
  return wrk.format("POST", path, headers, body)
end

-- Signed GETs from a pre-signed pool (examples/presign.rs): BENCH_POOL is the
-- pool file. Each wrk thread takes a disjoint slice (every nth request) and
-- uses each request once; a thread that runs out stops and says so.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
local reqs = {}
local i = 0
function init(args)
  exhausted = 0
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
  local caps = {}
  local k = 0
  for line in io.lines(os.getenv("BENCH_POOL")) do
    local kind, rest = line:match("^(%a)\t(.*)$")
    if kind == "C" then
      table.insert(caps, rest)
    elseif kind == "R" then
      if k % nthreads == tid then
        local c, p, sig, ts, nonce = rest:match("^(%d+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)$")
        table.insert(reqs, wrk.format("GET", p, {
          ["Authorization"] = caps[tonumber(c)],
          ["X-Starfish-Sig"] = sig,
          ["X-Starfish-Ts"] = ts,
          ["X-Starfish-Nonce"] = nonce,
        }))
      end
      k = k + 1
    end
  end
end
local cycle = os.getenv("BENCH_POOL_CYCLE") == "1" -- nginx: no nonce checks
function request()
  i = i + 1
  if i > #reqs and cycle then
    i = 1
  elseif i > #reqs then
    if exhausted == 0 then
      exhausted = 1
      wrk.thread:stop()
    end
    return reqs[#reqs]
  end
  return reqs[i]
end

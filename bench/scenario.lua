-- One wrk script for every benchmark scenario, chosen by environment variables (read at load
-- time, so the static scenarios define no request() and wrk builds their request once):
--   BENCH_SCENARIO   health | get | list | deep | post | put | put_if_match | mix | search | batch
--   BENCH_BATCH      products per POST /products/batch in the batch scenario (default 1000)
--   BENCH_IDS        file of "id sku" lines: the products GET and mix read (all of them)
--   BENCH_PUT_IDS    file of "id sku version" lines: the products the writes update
--   BENCH_QUERIES    file of URL-encoded q values, one a line: what search looks for
--   BENCH_PREFIX     unique per wrk run, so POSTed skus never collide across runs
--   BENCH_API_KEY    the X-API-Key for writes
--   BENCH_THREADS    wrk -t, so put_if_match can give each thread its own products
-- Every scenario counts non-2xx responses in response() and done() prints one line
--   BENCH_JSON {...}
-- with requests, requests/s, latency percentiles (microseconds) and every error count.

local scenario = os.getenv("BENCH_SCENARIO") or "health"
local ids_file = os.getenv("BENCH_IDS")
local put_ids_file = os.getenv("BENCH_PUT_IDS")
local queries_file = os.getenv("BENCH_QUERIES")
local prefix = os.getenv("BENCH_PREFIX") or "wrk"
local api_key = os.getenv("BENCH_API_KEY") or ""
local total_threads = tonumber(os.getenv("BENCH_THREADS") or "2")
local batch_size = tonumber(os.getenv("BENCH_BATCH") or "1000")

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
  table.insert(threads, thread)
end

-- Per-thread state (each wrk thread runs its own copy of this script).
non2xx = 0
statuses = ""
local seen = {}
local ids, skus, n_ids = {}, {}, 0
local put_ids, put_skus, n_put = {}, {}, 0
local queries, n_queries = {}, 0
local counter = 0
local write_headers = { ["X-API-Key"] = api_key, ["Content-Type"] = "application/json" }

local function read_lines(path, each)
  if not path then return end
  local file = assert(io.open(path, "r"))
  for line in file:lines() do each(line) end
  file:close()
end

-- put_if_match: a FIFO of the products this thread owns and their current versions. A product
-- leaves the queue when its PUT is sent and comes back with the version its response names, so
-- no product has two writes in flight and every If-Match carries the current version.
local queue, head, tail, version_of, sku_of = {}, 1, 0, {}, {}
starved = 0
lost = 0

function init(args)
  math.randomseed(os.time() * 1000 + tid)
  -- Each file only where it is used: a million ids cost each thread a second and 100 MB.
  if scenario == "search" then
    read_lines(queries_file, function(line)
      if line ~= "" then n_queries = n_queries + 1; queries[n_queries] = line end
    end)
  end
  if scenario == "get" or scenario == "mix" then
    read_lines(ids_file, function(line)
      local id, sku = line:match("^(%S+)%s+(%S+)")
      if id then n_ids = n_ids + 1; ids[n_ids] = id; skus[n_ids] = sku end
    end)
  end
  if scenario ~= "put" and scenario ~= "put_if_match" and scenario ~= "mix" then return end
  local lineno = 0
  read_lines(put_ids_file, function(line)
    local id, sku, version = line:match("^(%S+)%s+(%S+)%s+(%d+)")
    if not id then return end
    lineno = lineno + 1
    n_put = n_put + 1; put_ids[n_put] = id; put_skus[n_put] = sku
    -- Each thread owns every thread_count-th product: no two threads write one product.
    if scenario == "put_if_match" and lineno % total_threads == tid - 1 then
      tail = tail + 1; queue[tail] = id
      version_of[id] = tonumber(version); sku_of[id] = sku
    end
  end)
end

local function body(sku, n)
  return string.format(
    '{"sku":"%s","name":"Bench product %d","description":"Written by wrk","price":"%d.%02d","quantity":%d}',
    sku, n, n % 1000, n % 100, n % 5000)
end

local function get_one()
  return wrk.format("GET", "/products/" .. ids[math.random(n_ids)])
end

local function post_one()
  counter = counter + 1
  local sku = string.format("%s-%d-%d", prefix, tid, counter)
  return wrk.format("POST", "/products", write_headers, body(sku, counter))
end

-- One upsert of batch_size new products, each body as post_one writes it.
local function batch_one()
  local items = {}
  for i = 1, batch_size do
    counter = counter + 1
    items[i] = body(string.format("%s-%d-%d", prefix, tid, counter), counter)
  end
  local payload = '{"mode":"upsert","products":[' .. table.concat(items, ",") .. "]}"
  return wrk.format("POST", "/products/batch", write_headers, payload)
end

local function put_one(headers)
  counter = counter + 1
  local i = math.random(n_put)
  return wrk.format("PUT", "/products/" .. put_ids[i], headers, body(put_skus[i], counter))
end

local function put_if_match_one()
  counter = counter + 1
  if head > tail then
    -- Every owned product has a write in flight: cannot happen with far more products
    -- than connections, but count it rather than send a write that must fail.
    starved = starved + 1
    return put_one(write_headers)
  end
  local id = queue[head]; queue[head] = nil; head = head + 1
  local headers = {
    ["X-API-Key"] = api_key,
    ["Content-Type"] = "application/json",
    ["If-Match"] = '"v' .. version_of[id] .. '"',
  }
  return wrk.format("PUT", "/products/" .. id, headers, body(sku_of[id], counter))
end

local function search_one()
  return wrk.format("GET", "/products?limit=20&q=" .. queries[math.random(n_queries)])
end

if scenario == "get" then
  request = get_one
elseif scenario == "search" then
  request = search_one
elseif scenario == "post" then
  request = post_one
elseif scenario == "batch" then
  request = batch_one
elseif scenario == "put" then
  request = function() return put_one(write_headers) end
elseif scenario == "put_if_match" then
  request = put_if_match_one
elseif scenario == "mix" then
  -- 90 % reads of random products; 10 % writes: half creates, half unconditional replaces.
  request = function()
    local roll = math.random(100)
    if roll <= 90 then return get_one() end
    if roll <= 95 then return post_one() end
    return put_one(write_headers)
  end
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if not seen[status] then
      seen[status] = true
      statuses = statuses .. status .. " "
    end
  end
  if scenario == "put_if_match" then
    local id = body:match('"id":"([%x%-]+)"')
    local etag = headers["etag"] or headers["ETag"]
    if id and etag and version_of[id] then
      version_of[id] = tonumber(etag:match('"v(%d+)"'))
      tail = tail + 1; queue[tail] = id
    else
      lost = lost + 1  -- a failed write: its product leaves the rotation
    end
  end
end

function done(summary, latency, requests)
  local non2xx_total, starved_total, lost_total, seen_statuses = 0, 0, 0, ""
  for _, thread in ipairs(threads) do
    non2xx_total = non2xx_total + (thread:get("non2xx") or 0)
    starved_total = starved_total + (thread:get("starved") or 0)
    lost_total = lost_total + (thread:get("lost") or 0)
    seen_statuses = seen_statuses .. (thread:get("statuses") or "")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"scenario":"%s","requests":%d,"duration_us":%d,"rps":%.1f,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"non2xx":%d,"statuses":"%s","connect":%d,"read":%d,"write":%d,"timeout":%d,' ..
    '"status_errors":%d,"starved":%d,"lost":%d}\n',
    scenario, summary.requests, summary.duration, summary.requests / summary.duration * 1e6,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, non2xx_total, seen_statuses, e.connect, e.read, e.write, e.timeout,
    e.status, starved_total, lost_total))
end

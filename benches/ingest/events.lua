-- wrk script for benches/ingest.sh: POST /v1/events, one event a request, every id
-- unique across threads and runs (a run prefix from the environment), members cycling
-- over MEMBERS. Three of four events are `product.viewed` (stored, queued for journeys);
-- one of four is an `order.placed`, a state event that re-folds its member.
local run = os.getenv("RUN") or tostring(os.time())
local members = tonumber(os.getenv("MEMBERS") or "100000")
local token = os.getenv("TOKEN") or "bench-token"
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. token
end

function request()
  counter = counter + 1
  local n = counter * 64 + tid
  local member = (n * 7919) % members
  local body
  if counter % 4 == 0 then
    body = string.format(
      '{"id":"bench-%s-%d-%d","member_id":"m%d","name":"order.placed","occurred_at":"2026-12-01T10:00:00Z","properties":{"order_id":"o-%s-%d-%d","total":4200,"currency":"EUR"}}',
      run, tid, counter, member, run, tid, counter)
  else
    body = string.format(
      '{"id":"bench-%s-%d-%d","member_id":"m%d","name":"product.viewed","occurred_at":"2026-12-01T10:00:00Z","properties":{"product_id":"p%d"}}',
      run, tid, counter, member, n % 5000)
  end
  return wrk.format(nil, "/v1/events", nil, body)
end

done = function(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d seconds=%.2f rate=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, bad))
end

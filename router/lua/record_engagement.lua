-- Record one engagement report of a page view atomically: the view's counters move
-- from the state it last reported to the state it reports now, and the report goes
-- into the stream.
--
-- A page sends cumulative figures, again each time it is hidden; retries repeat a
-- report and reports can arrive out of order. The view's last state is kept in
-- KEYS[5], each figure only ever grows (the larger of the stored and the reported
-- value), and the counters get the difference: a repeat or an older report changes
-- nothing, and the counters always hold each view's latest state exactly once.
-- Later reports are credited to the variant, segment and time bucket of the view's
-- first report, even if the visitor's cookie changed in between.
--
-- A report that changed something also counts in the stats hash (<variant>:engagement,
-- the reports folded in) and bumps the revision, as record_event.lua does: routers read
-- an experiment's counters again only when its revision moved, and the monitor checks it
-- only when they did, so a guardrail on engagement alone (bounce rate) is looked at again.
--
-- KEYS[1]  engagement      croupier:{exp}:engagement     hash <variant>:<counter>
-- KEYS[2]  segengagement   croupier:{exp}:segengagement  hash <segment>|<variant>:<counter>
-- KEYS[3]  engbuckets      croupier:{exp}:engbuckets     hash <bucket>:<variant>:<counter>
-- KEYS[4]  events          croupier:{exp}:events         the event stream
-- KEYS[5]  pageview        croupier:{exp}:pv:<visitor>:<page view id>  hash: the view's last state (expires)
-- KEYS[6]  stats           croupier:{exp}:stats          hash <variant>:<counter>
-- KEYS[7]  revision        croupier:{exp}:revision       counter bumped on every change of the counters
--
-- ARGV[1]  variant         variant id from the visitor's cookie
-- ARGV[2]  segment         the segment the visitor was assigned in, '' for none
-- ARGV[3]  visitor         visitor id
-- ARGV[4]  page_view       the page view's id
-- ARGV[5]  active_ms       active time so far, milliseconds, already capped
-- ARGV[6]  scroll          deepest scroll so far, percent 0-100
-- ARGV[7]  clicks          clicks so far
-- ARGV[8]  engaged         1 or 0
-- ARGV[9]  scroll_buckets  buckets of the scroll histogram (each 100 / scroll_buckets percent)
-- ARGV[10] bucket          start of the time bucket, unix seconds (a first report's is kept)
-- ARGV[11] ttl             seconds the page view's state lives after its latest report
-- ARGV[12] maxlen          approximate cap of the stream
-- ARGV[13] ts              timestamp, unix milliseconds
--
-- Counters: views, engaged, active_ms (sum), active_sq (sum of squared seconds), clicks,
-- scroll:<i> (views whose deepest scroll is in bucket i); the time buckets hold views,
-- engaged, active_ms and clicks.
--
-- Returns 1 when a new page view was counted, 2 when a known view's figures grew,
-- 0 when the report held nothing new (nothing changed but the state's expiry).

local engagement, segengagement, engbuckets, events, pageview = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local stats, revision = KEYS[6], KEYS[7]
local variant, segment, visitor, page_view = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local active_ms, scroll, clicks, engaged = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local scroll_buckets, bucket, ttl, maxlen, ts = tonumber(ARGV[9]), ARGV[10], tonumber(ARGV[11]), ARGV[12], ARGV[13]

local function scroll_bucket(depth)
  return math.min(math.floor(depth * scroll_buckets / 100), scroll_buckets - 1)
end

local held = redis.call('HMGET', pageview, 'variant', 'segment', 'bucket', 'active', 'scroll', 'clicks', 'engaged')
local first = not held[1]
local was = {active = 0, scroll = 0, clicks = 0, engaged = 0}
if not first then
  variant, segment, bucket = held[1], held[2], held[3]
  was = {active = tonumber(held[4]), scroll = tonumber(held[5]), clicks = tonumber(held[6]),
         engaged = tonumber(held[7])}
  active_ms, scroll = math.max(active_ms, was.active), math.max(scroll, was.scroll)
  clicks, engaged = math.max(clicks, was.clicks), math.max(engaged, was.engaged)
  if active_ms == was.active and scroll == was.scroll and clicks == was.clicks and engaged == was.engaged then
    redis.call('EXPIRE', pageview, ttl)
    return 0
  end
end

local function add(counter, amount, timed)
  if amount == 0 then return end
  redis.call('HINCRBY', engagement, variant .. ':' .. counter, amount)
  if segment ~= '' then
    redis.call('HINCRBY', segengagement, segment .. '|' .. variant .. ':' .. counter, amount)
  end
  if timed then
    redis.call('HINCRBY', engbuckets, bucket .. ':' .. variant .. ':' .. counter, amount)
  end
end

if first then
  add('views', 1, true)
  add('scroll:' .. scroll_bucket(scroll), 1, false)
else
  local from, to = scroll_bucket(was.scroll), scroll_bucket(scroll)
  if from ~= to then
    add('scroll:' .. from, -1, false)
    add('scroll:' .. to, 1, false)
  end
end
add('engaged', engaged - was.engaged, true)
add('active_ms', active_ms - was.active, true)
add('clicks', clicks - was.clicks, true)
-- squares in seconds, a float counter: milliseconds squared would overflow a 64-bit counter
-- after 2.8 million views at the cap
local squares = (active_ms / 1000) ^ 2 - (was.active / 1000) ^ 2
if squares ~= 0 then
  redis.call('HINCRBYFLOAT', engagement, variant .. ':active_sq', squares)
  if segment ~= '' then
    redis.call('HINCRBYFLOAT', segengagement, segment .. '|' .. variant .. ':active_sq', squares)
  end
end

redis.call('HINCRBY', stats, variant .. ':engagement', 1)
redis.call('INCR', revision)  -- routers recompute only the experiments whose revision moved

redis.call('HSET', pageview, 'variant', variant, 'segment', segment, 'bucket', bucket, 'active', active_ms,
  'scroll', scroll, 'clicks', clicks, 'engaged', engaged)
redis.call('EXPIRE', pageview, ttl)
redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
  'type', 'engagement', 'variant', variant, 'visitor', visitor, 'id', page_view, 'ts', ts, 'segment', segment,
  'active_ms', active_ms, 'scroll', scroll, 'clicks', clicks, 'engaged', engaged)
if first then return 1 end
return 2

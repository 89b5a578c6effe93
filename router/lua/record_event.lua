-- Record one beacon event atomically: dedupe, counters, stream entry.
--
-- KEYS[1]  stats           croupier:{exp}:stats    hash <variant>:<counter>
-- KEYS[2]  buckets         croupier:{exp}:buckets  hash <bucket>:<variant>:<counter>
-- KEYS[3]  events          croupier:{exp}:events   the event stream
-- KEYS[4]  segstats        croupier:{exp}:segstats hash <segment>|<variant>:<counter>
-- KEYS[5]  linear          croupier:{exp}:linear   hash <variant>|b|<i> (a contextual policy's sum r x)
-- KEYS[6]  revision        croupier:{exp}:revision counter bumped on every change of the counters above
-- KEYS[7]  devbuckets      croupier:{exp}:devbuckets hash <bucket>:<device class>|<variant>:<counter>
--                          (a conversion's, the rate-drift check's strata)
-- KEYS[8]  dedupe (optional) croupier:{exp}:conv:<visitor>:<goal> or croupier:{exp}:eid:<id>
--
-- ARGV[1]  kind            view | click | convert
-- ARGV[2]  variant         variant id
-- ARGV[3]  goal            (convert only; '' otherwise)
-- ARGV[4]  value           number as text, or '' for none
-- ARGV[5]  visitor         visitor id
-- ARGV[6]  ttl             seconds the dedupe key lives
-- ARGV[7]  bucket          start of the time bucket, unix seconds
-- ARGV[8]  maxlen          approximate cap of the stream
-- ARGV[9]  ts              timestamp, unix milliseconds
-- ARGV[10] event_id        '' for none
-- ARGV[11] segment         the segment the visitor was assigned in, '' for none
-- ARGV[12] features        (convert of the experiment's goal only) hashed feature indices 'i,j,k', '' for none
-- ARGV[13] device          the device class of the request that reported it ('unknown' when not known)
--
-- Returns 1 when counted, 0 when it was a duplicate (nothing changed).

local stats, buckets, events, segstats, linear, revision = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local devbuckets, dedupe = KEYS[7], KEYS[8]
local kind, variant, goal, value, visitor = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ttl, bucket, maxlen, ts, event_id = tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local segment, features, device = ARGV[11], ARGV[12], ARGV[13]

if dedupe then
  if not redis.call('SET', dedupe, '1', 'NX', 'EX', ttl) then
    return 0
  end
end

local counter = kind
if kind == 'convert' then
  counter = 'conv:' .. goal
  redis.call('HINCRBY', devbuckets, bucket .. ':' .. device .. '|' .. variant .. ':' .. counter, 1)
end
redis.call('HINCRBY', stats, variant .. ':' .. counter, 1)
redis.call('INCR', revision)  -- routers recompute only the experiments whose revision moved
redis.call('HINCRBY', buckets, bucket .. ':' .. variant .. ':' .. counter, 1)
if value ~= '' then
  local v = tonumber(value)
  redis.call('HINCRBYFLOAT', stats, variant .. ':value:' .. goal, v)
  redis.call('HINCRBYFLOAT', stats, variant .. ':value2:' .. goal, v * v)
  redis.call('HINCRBYFLOAT', buckets, bucket .. ':' .. variant .. ':value:' .. goal, v)
end
if segment ~= '' then
  redis.call('HINCRBY', segstats, segment .. '|' .. variant .. ':' .. counter, 1)
  if value ~= '' then
    redis.call('HINCRBYFLOAT', segstats, segment .. '|' .. variant .. ':value:' .. goal, tonumber(value))
  end
end
if kind == 'convert' and features ~= '' then
  for index in string.gmatch(features, '[^,]+') do
    redis.call('HINCRBY', linear, variant .. '|b|' .. index, 1)
  end
end
redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
  'type', kind, 'variant', variant, 'visitor', visitor, 'goal', goal,
  'value', value, 'ts', ts, 'id', event_id, 'segment', segment)
return 1

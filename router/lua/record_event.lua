-- Record one beacon event atomically: dedupe, counters, stream entry.
--
-- KEYS[1]  stats hash      croupier:{exp}:stats    fields <variant>:<counter>
-- KEYS[2]  buckets hash    croupier:{exp}:buckets  fields <bucket>:<variant>:<counter>
-- KEYS[3]  event stream    croupier:{exp}:events
-- KEYS[4]  segments hash   croupier:{exp}:segstats fields <segment>|<variant>:<counter>
-- KEYS[5]  linear hash     croupier:{exp}:linear   fields <variant>|b|<i> (a contextual policy's sum r x)
-- KEYS[6]  dedupe key      (optional) croupier:{exp}:conv:<visitor>:<goal> or croupier:{exp}:eid:<id>
--
-- ARGV[1]  type            view | click | convert
-- ARGV[2]  variant id
-- ARGV[3]  goal            (convert only; '' otherwise)
-- ARGV[4]  value           number as text, or '' for none
-- ARGV[5]  visitor id
-- ARGV[6]  dedupe ttl      seconds the dedupe key lives
-- ARGV[7]  bucket          start of the time bucket, unix seconds
-- ARGV[8]  stream maxlen   approximate cap of the stream
-- ARGV[9]  timestamp       unix milliseconds
-- ARGV[10] event id        '' for none
-- ARGV[11] segment         the segment the visitor was assigned in, '' for none
-- ARGV[12] features        (convert of the experiment's goal only) hashed feature indices 'i,j,k', '' for none
--
-- Returns 1 when counted, 0 when it was a duplicate (nothing changed).

if KEYS[6] then
  if not redis.call('SET', KEYS[6], '1', 'NX', 'EX', tonumber(ARGV[6])) then
    return 0
  end
end

local variant, kind, goal, value = ARGV[2], ARGV[1], ARGV[3], ARGV[4]
local counter = kind
if kind == 'convert' then
  counter = 'conv:' .. goal
end
redis.call('HINCRBY', KEYS[1], variant .. ':' .. counter, 1)
redis.call('HINCRBY', KEYS[2], ARGV[7] .. ':' .. variant .. ':' .. counter, 1)
if value ~= '' then
  local v = tonumber(value)
  redis.call('HINCRBYFLOAT', KEYS[1], variant .. ':value:' .. goal, v)
  redis.call('HINCRBYFLOAT', KEYS[1], variant .. ':value2:' .. goal, v * v)
  redis.call('HINCRBYFLOAT', KEYS[2], ARGV[7] .. ':' .. variant .. ':value:' .. goal, v)
end
local segment = ARGV[11] or ''
if segment ~= '' then
  redis.call('HINCRBY', KEYS[4], segment .. '|' .. variant .. ':' .. counter, 1)
  if value ~= '' then
    redis.call('HINCRBYFLOAT', KEYS[4], segment .. '|' .. variant .. ':value:' .. goal, tonumber(value))
  end
end
local features = ARGV[12] or ''
if kind == 'convert' and features ~= '' then
  for index in string.gmatch(features, '[^,]+') do
    redis.call('HINCRBY', KEYS[5], variant .. '|b|' .. index, 1)
  end
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*',
  'type', kind, 'variant', variant, 'visitor', ARGV[5], 'goal', goal,
  'value', value, 'ts', ARGV[9], 'id', ARGV[10], 'segment', segment)
return 1

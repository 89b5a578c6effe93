-- Record a batch of one experiment's assignments atomically, at most once: trial
-- counters, per-bucket trials and expected trials, and one stream entry per
-- assignment. Atomic per experiment, so a batch that fails part-way across cluster
-- nodes leaves each experiment either fully written or untouched; once, because a
-- router may send a write again when it could not tell whether Redis applied it.
--
-- KEYS[1]  stats hash      croupier:{exp}:stats    fields <variant>:<counter>
-- KEYS[2]  buckets hash    croupier:{exp}:buckets  fields <bucket>:<variant>:<counter>
-- KEYS[3]  event stream    croupier:{exp}:events
-- KEYS[4]  writers hash    croupier:{exp}:writers  fields <router id> → last sequence number applied
-- KEYS[5]  segments hash   croupier:{exp}:segstats fields <segment>|<variant>:<counter>
-- KEYS[6]  linear hash     croupier:{exp}:linear   fields <variant>|<i>|<j> (x x^T of a contextual policy)
--
-- ARGV[1]  router id       random per router process
-- ARGV[2]  sequence        increasing per router; a number at or below the last applied one is a repeat
-- ARGV[3]  stream maxlen   approximate cap of the stream
-- ARGV[4]  n               number of integer increments that follow, then n times:
--          hash (the index in KEYS: 1 = stats, 2 = buckets, 5 = segments, 6 = linear), field, amount
-- then     m               number of float increments (expected trials), then m times:
--          field, amount   (buckets hash)
-- then     s               number of distinct splits, then s times:
--          probabilities (JSON)
-- then     entries         every stream entry, each a line of seven tab-separated fields:
--          variant, visitor, reason, split (1-based index of the probabilities above),
--          timestamp (unix ms), segment ('' none), channel ('' for a page view: the
--          entry then has no channel field); ids, visitors, segments and channels never
--          hold a tab or newline. One argument for the batch, not six per assignment: the router
--          spent ~4 µs a decision encoding those (profiled), Redis a little on each too.
--
-- Returns the number of stream entries written, or -1 when this write was applied before.

local seq = tonumber(ARGV[2])
local last = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
if seq <= last then
  return -1
end
redis.call('HSET', KEYS[4], ARGV[1], seq)

local i = 4
local n = tonumber(ARGV[i])
for _ = 1, n do
  redis.call('HINCRBY', KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3])
  i = i + 3
end
i = i + 1
local m = tonumber(ARGV[i])
for _ = 1, m do
  redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i + 1], ARGV[i + 2])
  i = i + 2
end
i = i + 1
local s = tonumber(ARGV[i])
local splits = {}
for j = 1, s do
  splits[tostring(j)] = ARGV[i + j]
end
local k = 0
for variant, visitor, reason, split, ts, segment, channel in
    string.gmatch(ARGV[i + s + 1],
      '([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\n') do
  if channel == '' then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*',
      'type', 'assign', 'variant', variant, 'visitor', visitor, 'reason', reason,
      'probs', splits[split], 'ts', ts, 'segment', segment)
  else
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*',
      'type', 'assign', 'variant', variant, 'visitor', visitor, 'reason', reason,
      'probs', splits[split], 'ts', ts, 'segment', segment, 'channel', channel)
  end
  k = k + 1
end
return k

-- Record a batch of one experiment's assignments atomically, at most once: trial
-- counters, per-bucket trials and expected trials, per-bucket device counts (of the
-- whole traffic, and per arm), and one stream entry per assignment. Atomic per experiment, so a batch that fails
-- part-way across cluster nodes leaves each experiment either fully written or
-- untouched; once, because a router may send a write again when it could not tell
-- whether Redis applied it (router/ledger.py).
--
-- KEYS[1]  stats           croupier:{exp}:stats    hash <variant>:<counter>
-- KEYS[2]  buckets         croupier:{exp}:buckets  hash <bucket>:<variant>:<counter>
-- KEYS[3]  events          croupier:{exp}:events   the event stream
-- KEYS[4]  writers         croupier:{exp}:writers  hash <router id> → last sequence number applied
-- KEYS[5]  segstats        croupier:{exp}:segstats hash <segment>|<variant>:<counter>
-- KEYS[6]  linear          croupier:{exp}:linear   hash <variant>|<i>|<j> (x x^T of a contextual policy)
-- KEYS[7]  revision        croupier:{exp}:revision counter bumped on every change of the counters above
-- KEYS[8]  mixbuckets      croupier:{exp}:mixbuckets hash <bucket>:device=<device class> (the traffic's mix)
-- KEYS[9]  devbuckets      croupier:{exp}:devbuckets hash <bucket>:<device class>|<variant>:<counter>
--                          (the rate-drift check's strata)
--
-- ARGV[1]  writer          router id, random per router process
-- ARGV[2]  seq             increasing per router; a number at or below the last applied one is a repeat
-- ARGV[3]  maxlen          approximate cap of the stream
-- ARGV[4]  trials          integer increments of stats, lines of field<TAB>amount
-- ARGV[5]  bucket_trials   integer increments of buckets, likewise
-- ARGV[6]  segment_trials  integer increments of segstats, likewise
-- ARGV[7]  feature_pairs   integer increments of linear, likewise
-- ARGV[8]  expected        float increments of buckets (expected trials), likewise
-- ARGV[9]  splits          the batch's distinct probabilities, one JSON object a line
-- ARGV[10] entries         every stream entry, each a line of seven tab-separated fields:
--          variant, visitor, reason, split (1-based line number in splits),
--          timestamp (unix ms), segment ('' none), channel ('' for a page view: the
--          entry then has no channel field). Every line ends with a newline; fields never
--          hold a tab or newline (the router replaces stray ones). One argument for the
--          batch, not six per assignment: the router spent ~4 µs a decision encoding
--          those (profiled), Redis a little on each too.
-- ARGV[11] mix_trials      integer increments of mixbuckets, like trials
-- ARGV[12] device_trials   integer increments of devbuckets, like trials: one line per bucket, arm and
--                          device class of the batch
--
-- Returns the number of stream entries written, or -1 when this write was applied before.

local stats, buckets, events, writers, segstats, linear, revision = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local mixbuckets, devbuckets = KEYS[8], KEYS[9]
local writer, seq, maxlen = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local trials, bucket_trials, segment_trials, feature_pairs = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local expected, splits, entries, mix_trials, device_trials = ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]

local last = tonumber(redis.call('HGET', writers, writer) or '0')
if seq <= last then
  return -1
end
redis.call('HSET', writers, writer, seq)
redis.call('INCR', revision)  -- routers recompute only the experiments whose revision moved

local function increment(command, hash, lines)
  for field, amount in string.gmatch(lines, '([^\t\n]*)\t([^\t\n]*)\n') do
    redis.call(command, hash, field, amount)
  end
end
increment('HINCRBY', stats, trials)
increment('HINCRBY', buckets, bucket_trials)
increment('HINCRBY', segstats, segment_trials)
increment('HINCRBY', linear, feature_pairs)
increment('HINCRBYFLOAT', buckets, expected)
increment('HINCRBY', mixbuckets, mix_trials)
increment('HINCRBY', devbuckets, device_trials)

local probs, count = {}, 0
for split in string.gmatch(splits, '([^\n]*)\n') do
  count = count + 1
  probs[tostring(count)] = split
end
local k = 0
for variant, visitor, reason, split, ts, segment, channel in
    string.gmatch(entries,
      '([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\n') do
  if channel == '' then
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
      'type', 'assign', 'variant', variant, 'visitor', visitor, 'reason', reason,
      'probs', probs[split], 'ts', ts, 'segment', segment)
  else
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
      'type', 'assign', 'variant', variant, 'visitor', visitor, 'reason', reason,
      'probs', probs[split], 'ts', ts, 'segment', segment, 'channel', channel)
  end
  k = k + 1
end
return k

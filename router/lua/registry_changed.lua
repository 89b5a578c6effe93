-- Record that one experiment's registry entry changed: bump the registry version and
-- note the experiment in the change log under that version, in one step, so a router
-- that reads the log never sees a version whose change is missing from it.
--
-- The log is a sorted set: member the experiment id, score the version of its latest
-- change, so it holds one entry per experiment however often it changes. Past ``keep``
-- entries the oldest are dropped, and the member '' (never an experiment id) keeps the
-- highest version dropped: a router whose last version is below it reloads the whole
-- registry instead of trusting the log.
--
-- Both keys live in one hash slot (the log's hash tag is the version key's name), so
-- this runs the same on Redis Cluster.
--
-- KEYS[1]  version     croupier:registry-version            counter
-- KEYS[2]  changes     {croupier:registry-version}:changes  sorted set id → version
--
-- ARGV[1]  experiment  the id of the experiment created, changed or removed
-- ARGV[2]  keep        how many entries the log keeps
--
-- Returns the new registry version.

local version, changes = KEYS[1], KEYS[2]
local experiment, keep = ARGV[1], tonumber(ARGV[2])

local bumped = redis.call('INCR', version)
redis.call('ZADD', changes, bumped, experiment)
local floor = redis.call('ZSCORE', changes, '')
local excess = redis.call('ZCARD', changes) - (floor and 1 or 0) - keep
if excess > 0 then
  redis.call('ZREM', changes, '')
  local dropped = redis.call('ZPOPMIN', changes, excess)
  redis.call('ZADD', changes, dropped[#dropped], '')
end
return bumped

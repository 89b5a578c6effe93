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
-- The epoch is a random token set once per registry: a registry written again from
-- scratch (a Redis that lost its data) gets a new one, so a router notices even when the
-- new version happens to equal the one it last saw.
--
-- All three keys live in one hash slot (the log's hash tag is the version key's name), so
-- this runs the same on Redis Cluster.
--
-- KEYS[1]  version     croupier:registry-version            counter
-- KEYS[2]  changes     {croupier:registry-version}:changes  sorted set id → version
-- KEYS[3]  epoch       {croupier:registry-version}:epoch    the registry's random token
--
-- ARGV[1]  experiment  the id of the experiment created, changed or removed
-- ARGV[2]  keep        how many entries the log keeps
-- ARGV[3]  token       the epoch to set when the registry has none
--
-- Returns the new registry version.

local version, changes, epoch = KEYS[1], KEYS[2], KEYS[3]
local experiment, keep, token = ARGV[1], tonumber(ARGV[2]), ARGV[3]

redis.call('SET', epoch, token, 'NX')

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

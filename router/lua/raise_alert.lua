-- Raise an alert: append it to the outbox stream, unless its episode is already
-- open (the condition was alerted and has not cleared since). The check and the
-- append are one step, so two monitors (one losing its lease while the other
-- takes it) cannot both raise the same episode.
--
-- The experiment's own index of its alerts (their outbox entry ids, newest first) is
-- written in the same step, so a reader of one experiment's alerts never scans the
-- outbox, where other experiments' alerts would push them out of reach.
--
-- KEYS[1]  outbox          {croupier:alerts}:outbox   stream of alerts to deliver
-- KEYS[2]  open            {croupier:alerts}:open     hash episode -> id of the alert that opened it
-- KEYS[3]  index (optional) {croupier:alerts}:experiment:<experiment>  list of the experiment's alerts'
--                          outbox entry ids, newest first, capped at ARGV[5]
--
-- ARGV[1]  id              the alert's id (the receivers' deduplication key)
-- ARGV[2]  alert           the alert as JSON
-- ARGV[3]  episode         '<kind>|<experiment>|<variant>'; '' raises without an episode
-- ARGV[4]  maxlen          approximate length the outbox is capped at
-- ARGV[5]  keep (optional) entries the experiment's index keeps (with KEYS[3])
--
-- Returns 1 when the alert was appended, 0 when its episode was already open.

local outbox, open, index = KEYS[1], KEYS[2], KEYS[3]
local id, alert, episode, maxlen, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])

if episode ~= '' and redis.call('HSETNX', open, episode, id) == 0 then
  return 0
end
local entry = redis.call('XADD', outbox, 'MAXLEN', '~', maxlen, '*', 'id', id, 'alert', alert)
if index then
  redis.call('LPUSH', index, entry)
  redis.call('LTRIM', index, 0, keep - 1)
end
return 1

-- Raise an alert: append it to the outbox stream, unless its episode is already
-- open (the condition was alerted and has not cleared since). The check and the
-- append are one step, so two monitors (one losing its lease while the other
-- takes it) cannot both raise the same episode.
--
-- KEYS[1]  outbox          {croupier:alerts}:outbox   stream of alerts to deliver
-- KEYS[2]  open            {croupier:alerts}:open     hash episode -> id of the alert that opened it
--
-- ARGV[1]  id              the alert's id (the receivers' deduplication key)
-- ARGV[2]  alert           the alert as JSON
-- ARGV[3]  episode         '<kind>|<experiment>|<variant>'; '' raises without an episode
-- ARGV[4]  maxlen          approximate length the outbox is capped at
--
-- Returns 1 when the alert was appended, 0 when its episode was already open.

local outbox, open = KEYS[1], KEYS[2]
local id, alert, episode, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

if episode ~= '' and redis.call('HSETNX', open, episode, id) == 0 then
  return 0
end
redis.call('XADD', outbox, 'MAXLEN', '~', maxlen, '*', 'id', id, 'alert', alert)
return 1

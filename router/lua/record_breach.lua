-- Record a guardrail breach of a variant, or a marketer clearing it, atomically with its
-- entry in the experiment's event stream. The variant's ``guardrail`` counter in the stats
-- hash says what the allocation must do (1 cap at the floor, 2 no new visitors, -1 cleared):
-- every router reads that hash when the revision moves, so each recomputes the experiment's
-- split at its next refresh, capping or releasing the variant, with no read of its own.
--
-- A breach is recorded once: a variant already breached, or cleared by a marketer, keeps
-- that state (a cleared breach is the marketer's decision, not re-raised by the next look).
--
-- KEYS[1]  breaches        croupier:{exp}:breaches   hash <variant> -> the breach as JSON
-- KEYS[2]  revision        croupier:{exp}:revision   counter the routers compare
-- KEYS[3]  events          croupier:{exp}:events     the event stream
-- KEYS[4]  stats           croupier:{exp}:stats      hash <variant>:<counter>
--
-- ARGV[1]  variant         variant id
-- ARGV[2]  doc             the breach (or the cleared breach) as JSON
-- ARGV[3]  state           breached | cleared
-- ARGV[4]  maxlen          approximate cap of the stream
-- ARGV[5]  ts              timestamp, unix milliseconds
-- ARGV[6]  code            the allocation's instruction: 1 cap, 2 pause, -1 cleared
--
-- Returns 1 when the state changed, 0 when it did not (already breached or cleared; or
-- cleared without a breach).

local breaches, revision, events, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local variant, doc, state, maxlen, ts, code = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

if state == 'breached' then
  if redis.call('HSETNX', breaches, variant, doc) == 0 then
    return 0
  end
else
  local held = redis.call('HGET', breaches, variant)
  if not held or string.find(held, '"state":"cleared"', 1, true) then
    return 0
  end
  redis.call('HSET', breaches, variant, doc)
end
redis.call('HSET', stats, variant .. ':guardrail', code)
redis.call('INCR', revision)
redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'type', 'guardrail', 'variant', variant,
           'state', state, 'breach', doc, 'ts', ts)
return 1

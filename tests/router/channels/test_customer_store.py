"""The store's customer assignments: compare-and-set claims on a real redis-server."""

from __future__ import annotations

import asyncio

from croupier.router.settings import Settings
from croupier.router.store import CustomerAssignment, Store, _bucket_key, customer_bucket


def drawn(variant: str, visitor: str) -> CustomerAssignment:
    return CustomerAssignment(variant, visitor, 1_800_000_000, 0.5, (("a", 0.5), ("b", 0.5)))


def run(redis_url: str, scenario):
    async def main():
        store = Store(Settings(redis_url=redis_url, secret="s" * 32, cookie_max_age=3600))
        try:
            return await scenario(store)
        finally:
            await store.close()
    return asyncio.run(main())


def test_concurrent_first_claims_agree_on_one_winner(redis_url):
    async def scenario(store):
        mine = [drawn("ab"[i % 2], f"visitor{i:012d}") for i in range(40)]
        return await asyncio.gather(*(store.claim_customer_assignment("promo", "c1", m, None) for m in mine)), \
            await store.customer_assignment("promo", "c1"), await store.redis.ttl(_bucket_key("promo", customer_bucket("c1")))

    results, stored, ttl = run(redis_url, scenario)
    assert sum(won for _, won in results) == 1
    assert {held.visitor for held, _ in results} == {stored.visitor}
    assert 3500 < ttl <= 3600  # lives as long as an assignment cookie


def test_a_reassignment_replaces_only_the_assignment_it_read(redis_url):
    async def scenario(store):
        first, _ = await store.claim_customer_assignment("promo", "c1", drawn("a", "v" * 22), None)
        moved = [drawn("b", "v" * 22), drawn("b", "v" * 22)]  # identical draws: still only one wins
        one = await store.claim_customer_assignment("promo", "c1", moved[0], first)
        two = await store.claim_customer_assignment("promo", "c1", moved[1], first)  # read the old one: loses
        return one, two

    (held1, won1), (held2, won2) = run(redis_url, scenario)
    assert (won1, won2) == (True, False)
    assert held1.variant == held2.variant == "b"


def test_a_record_in_the_older_json_key_is_read_and_replaced_at_its_next_claim(redis_url):
    old = '{"variant":"b","visitor":"' + "w" * 22 + '","issued":1800000000,"propensity":0.5,' \
          '"probabilities":{"a":0.5,"b":0.5},"segment":"","features":[]}'

    async def scenario(store):
        await store.redis.set("croupier:{promo}:cust:c9", old)
        held = await store.customer_assignment("promo", "c9")
        moved, won = await store.claim_customer_assignment("promo", "c9", drawn("a", "w" * 22), held)
        return held, won, await store.customer_assignment("promo", "c9")

    held, won, now = run(redis_url, scenario)
    assert (held.variant, held.visitor, held.probabilities) == ("b", "w" * 22, (("a", 0.5), ("b", 0.5)))
    assert won and (now.variant, now.visitor) == ("a", "w" * 22)


def test_the_compact_record_keeps_what_a_returning_customer_needs():
    mine = CustomerAssignment("cashback", "v" * 22, 1_800_000_000, 1 / 3, (("a", 0.5),), "country=fr|x", (3, 17))
    raw = mine.encode()
    assert raw == "cashback|" + "v" * 22 + "|1800000000|0.333333|country=fr|x|3,17"
    back = CustomerAssignment.decode(raw)
    assert (back.variant, back.visitor, back.issued, back.segment, back.features, back.raw) == \
        ("cashback", "v" * 22, 1_800_000_000, "country=fr|x", (3, 17), raw)
    assert back.propensity == 0.333333 and back.probabilities == ()

"""The ledger's refusal fold (R19 under reject) keeps only what its decisions read: no proxy book (issue 12 review)."""

from events import ProxySubstituted
from projections.refusals import RefusalFold
from tests.factories import at, cast, register_event, small_meeting


def test_the_refusal_fold_keeps_no_proxy_book_and_still_folds_the_meeting():
    fold = RefusalFold()
    substitution = ProxySubstituted(
        event_id="sub-1",
        meeting_id="m1",
        proxy_holder="Ann Proxy",
        substitute="Dana",
        executed_at=at(1),
        received_at=at(1),
    )
    vote = cast("R-1", {"2": "for"}, executed=2)
    assert fold.apply_all([small_meeting(overvote_policy="reject"), register_event(), substitution, vote]) == []
    assert not fold.projection.state.proxy_books and fold.projection.state.proxies == {}
    assert fold.tracks("m1") and fold.projection.tallies["m1"].buckets[("2", "for", "")] == 3000

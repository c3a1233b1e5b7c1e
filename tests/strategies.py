"""Hypothesis strategies shared by the unit tests: valid accepted submissions of the small meeting."""

from hypothesis import strategies as st

from tests.factories import POSITIONS, cast, revoke

CONTROL_NUMBERS = [p.control_number for p in POSITIONS]
SHARES = {p.control_number: p.shares for p in POSITIONS}


@st.composite
def submissions(draw):
    """Valid accepted submissions of the small meeting: casts (any channel), revocations."""
    cn = draw(st.sampled_from(CONTROL_NUMBERS))
    executed = draw(st.integers(0, 40))
    received = executed + draw(st.integers(0, 5))
    if draw(st.integers(0, 5)) == 0:
        return revoke(cn, executed=executed, received=received)
    beneficial = cn.startswith("B")
    discretionary = beneficial and draw(st.booleans())
    item_ids = ["2"] if discretionary else draw(st.lists(st.sampled_from(["1.1", "1.2", "2", "3", "5"]), unique=True))
    shares = draw(st.one_of(st.none(), st.integers(1, SHARES[cn])))
    represented = shares or SHARES[cn]
    choices = {}
    for item_id in item_ids:
        options = ["1y", "2y", "3y", "abstain"] if item_id == "5" else ["for", "against", "abstain"]
        if draw(st.booleans()):
            choices[item_id] = draw(st.sampled_from(options))
        else:
            a = draw(st.integers(0, represented))
            choices[item_id] = {options[0]: a, options[1]: draw(st.integers(0, represented - a))}
    channel = "broker" if beneficial else draw(st.sampled_from(["internet", "phone", "mail", "in_person"]))
    if beneficial and draw(st.integers(0, 9)) == 0:
        channel = "in_person"
        discretionary = False
    return cast(
        cn,
        choices,
        executed=executed,
        received=received,
        channel=channel,
        shares=shares,
        discretionary=discretionary,
        signatures=["Alice", "Carl", "Dana"],
        legal_proxy_id="LP",
    )

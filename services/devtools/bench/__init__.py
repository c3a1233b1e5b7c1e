"""`vote-ledger bench`: our design against the limits of its parts and against its peers, side by side."""

"""The PostgreSQL log adapter: every statement on ledger_log, ledger_parked, ledger_append_lock and ledger_offsets.

append (the ledger's writes), admin (the rows a judge is rebuilt from, load_judge), reads (heads,
rows, meeting facts), refold (a late poll closure's votes folded again, R12), history (auditors'
filtered views), verify (chain rows for `audit verify`), export (rows for an export file), heads
(chain heads to publish), status (counts), bench (the benchmark's own statements). Migrations define
the tables (../migrations/).
"""

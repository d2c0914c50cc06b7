"""Double-entry ledger: postings, rules that derive them from events, pauses, balance readers."""

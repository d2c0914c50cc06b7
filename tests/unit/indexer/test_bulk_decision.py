from indexer.bulk import worth_deferring


def test_defers_only_a_backfill_bigger_than_the_table_and_the_threshold():
    assert worth_deferring(200_000, 0, 100_000)
    assert worth_deferring(200_000, 200_000, 100_000)
    assert not worth_deferring(200_000, 200_001, 100_000)   # the rebuild would read more than the backfill adds
    assert not worth_deferring(99_999, 0, 100_000)
    assert not worth_deferring(10**9, 0, 0)                  # 0 turns it off
